"""Benchmark: `clarion diff` of two versions of the large generated config.

    python benchmarks/diff_large.py [--runs N] [--changed FRACTION]

1. Generates the large config of `compile_large.py` (its own generator, same seed), then a copy in
   which 1% of the recipients (50 of 5,000, fixed seed) change: a different email selector, one
   push device switched on or off, or an in-app inbox added or removed.
2. Runs `clarion diff OLD NEW --format json --exit-code` on the two directories in a fresh process,
   N times (default 3): wall time, the peak RSS of the largest process (`os.wait4`), and the peak
   of the summed RSS of the whole process tree (sampled from /proc every 20 ms: the two sides are
   built in two processes at once on a machine with 2 cores or more). Fails (exit 1) if the diff
   does not exit 1 or reports none of the changed recipients.
3. Runs `clarion diff` on the two compiled tables (no build), and the references in the same
   run: GNU `diff -u` over the two tables' JSON, one key per line (`indent=1`, sorted keys), and
   Python's `difflib.unified_diff` over the same lines (stopped after 30 s); prints the ratio.

Targets printed beside the figures: the directory diff <= 5 s and <= 500 MB (summed tree).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compile_large  # the generator of the large config

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 5.0
TARGET_MB = 500.0

REFERENCE_CHILD = r"""
import difflib, json, sys, time
t0 = time.perf_counter()
sides = []
for path in sys.argv[1:3]:
    with open(path, "rb") as f:
        sides.append(json.dumps(json.loads(f.read()), indent=1, sort_keys=True).splitlines())
lines = sum(1 for _ in difflib.unified_diff(sides[0], sides[1], lineterm="", n=3))
print(json.dumps({"seconds": time.perf_counter() - t0, "lines": lines}))
"""
DIFFLIB_LIMIT_S = 30.0  # difflib's SequenceMatcher on ~10^6 similar lines can take minutes


def pretty(table: Path) -> Path:
    out = table.with_suffix(".pretty.json")
    text = json.dumps(json.loads(table.read_bytes()), indent=1, sort_keys=True)
    out.write_text(text + "\n", encoding="utf-8")
    return out


def mutate(root: Path, fraction: float, seed: int = 7) -> list[str]:
    """Change `fraction` of the recipients in place; returns their names."""
    rng = random.Random(seed)
    files = sorted((root / "team").glob("recipients-*.yaml"))
    people: dict[str, tuple[Path, dict[str, Any]]] = {}
    documents: dict[Path, dict[str, Any]] = {}
    for path in files:
        documents[path] = yaml.load(path.read_text("utf-8"), Loader=yaml.CSafeLoader)
        for name in documents[path]["recipients"]:
            people[name] = (path, documents[path])
    chosen = sorted(rng.sample(sorted(people), max(1, round(len(people) * fraction))))
    categories = [c for c, _ in compile_large.CATEGORIES[: compile_large.N_CATEGORIES]]
    for i, name in enumerate(chosen):
        person = people[name][1]["recipients"][name]
        kind = i % 3
        if kind == 0:
            person["email"]["events"] = rng.choice(
                [
                    "all",
                    "none",
                    rng.sample(categories, 2),
                    {"all": True, "except": [categories[i % 20]]},
                ]
            )
        elif kind == 1:
            device = person["push"][rng.randrange(2)]
            device["enabled"] = not device.get("enabled", True)
        else:
            if person.get("in_app"):
                del person["in_app"]
            else:
                person["in_app"] = {"events": rng.sample(categories, 3)}
    for path, document in documents.items():
        compile_large.dump(path, document, "Generated: recipients (changed by diff_large.py).")
    return chosen


def run_tree(argv: list[str]) -> tuple[float, float, float, int, str]:
    """(wall s, peak RSS of the largest process and of the whole tree in MB, exit, stdout)."""
    peak_sum = [0.0]
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=REPO)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak_sum[0] = max(peak_sum[0], tree_rss_mb(proc.pid))
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        if code not in (0, 1):
            err.seek(0)
            sys.stderr.write(err.read().decode("utf-8", "replace"))
    return wall, usage.ru_maxrss / 1024, peak_sum[0], code, text


def tree_rss_mb(pid: int) -> float:
    total = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next(
                int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
            )
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--changed", type=float, default=0.01, help="fraction of recipients")
    args = parser.parse_args()
    py = sys.executable
    scratch = Path(tempfile.mkdtemp(prefix="clarion-diff-bench-"))
    try:
        old, new = scratch / "old", scratch / "new"
        t0 = time.perf_counter()
        compile_large.generate(old)
        shutil.copytree(old, new)
        chosen = mutate(new, args.changed)
        print(
            f"Generated two versions of the large config ({time.perf_counter() - t0:.1f} s): "
            f"{len(chosen)} of {compile_large.N_RECIPIENTS:,} recipients changed"
        )
        cmd = [py, "-m", "clarion", "diff", str(old), str(new), "--format", "json", "--exit-code"]
        walls, rss, sums = [], [], []
        for i in range(args.runs):
            wall, peak, peak_sum, code, out = run_tree(cmd)
            found = json.loads(out) if out.strip() else {}
            touched = {r["recipient"] for r in found.get("reach", [])}
            touched |= {
                i["recipient"]
                for s in ("added", "removed", "changed")
                for i in found.get("addresses", {}).get(s, [])
            }
            if code != 1 or not touched or not touched <= set(chosen):
                print(f"diff failed or wrong (exit {code}): {sorted(touched - set(chosen))[:5]}")
                return 1
            walls.append(wall)
            rss.append(peak)
            sums.append(peak_sum)
            print(
                f"  run {i + 1}: {wall:.2f} s, largest process {peak:.0f} MB, "
                f"whole tree {peak_sum:.0f} MB; {len(touched)} recipients reported, "
                f"{len(found['reach'])} addresses whose events change"
            )
        # -- tables, and the reference ----------------------------------------------------------
        tables = []
        for side in (old, new):
            path = scratch / f"{side.name}.json"
            subprocess.run(
                [py, "-m", "clarion", "compile", str(side), "-o", str(path)],
                check=True,
                capture_output=True,
            )
            tables.append(path)
        t_walls = []
        for _ in range(args.runs):
            wall, _, _, code, _ = run_tree(
                [py, "-m", "clarion", "diff", *map(str, tables), "--exit-code"]
            )
            assert code == 1
            t_walls.append(wall)
        # GNU diff over the same JSON, one key per line (files written beforehand).
        pretty_files = [str(pretty(p)) for p in tables]
        r_walls = []
        for _ in range(args.runs):
            wall, _, _, code, _ = run_tree(["diff", "-u", *pretty_files])
            assert code == 1
            r_walls.append(wall)
        try:
            done = subprocess.run(
                [py, "-c", REFERENCE_CHILD, *map(str, tables)],
                capture_output=True,
                text=True,
                timeout=DIFFLIB_LIMIT_S,
                check=True,
            )
            difflib_s = f"{json.loads(done.stdout)['seconds']:.2f} s"
        except subprocess.TimeoutExpired:
            difflib_s = f"did not finish in {DIFFLIB_LIMIT_S:.0f} s"
        med = statistics.median
        print()
        print(f"clarion diff of two directories ({args.runs} runs, min / median):")
        print(
            f"  wall              {min(walls):6.2f} / {med(walls):6.2f} s   "
            f"target <= {TARGET_S:.0f} s"
            f"  [{'OK' if med(walls) <= TARGET_S else 'OVER'}]"
        )
        print(
            f"  peak RSS, tree    {min(sums):6.0f} / {med(sums):6.0f} MB  "
            f"target <= {TARGET_MB:.0f} MB"
            f" [{'OK' if max(sums) <= TARGET_MB else 'OVER'}]  (largest process {max(rss):.0f} MB)"
        )
        print(f"clarion diff of the two compiled tables: {min(t_walls):.2f} / {med(t_walls):.2f} s")
        print(
            f"reference: `diff -u` of the tables' JSON (indent=1, sorted keys): "
            f"{min(r_walls):.2f} / {med(r_walls):.2f} s; "
            f"Python difflib.unified_diff of the same lines: {difflib_s}"
        )
        print(
            f"ratio clarion diff (tables) / diff -u: x{med(t_walls) / med(r_walls):.1f}; "
            f"directories / diff -u: x{med(walls) / med(r_walls):.1f}"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
