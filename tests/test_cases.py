"""Golden config cases: every broken config under tests/cases/bad gives exactly its diagnostics.

Layout (see tests/cases/README.md):

    tests/cases/bad/<name>/config/...      a config with one problem
    tests/cases/bad/<name>/expected.json   {"diagnostics": [{"code", "severity", "file", "line",
                                            "column"?, "contains"?: [...]}],
                                            "secrets"?: [...], "strict"?: true, "generate"?: {...}}
    tests/cases/good/<name>/config/...     a valid config: no diagnostics at all

`file` is relative to the case folder (the command runs there); `line` may be null for a finding
about a whole file. `contains` lists strings the diagnostic's message or hint must contain.
`secrets` are strings that must never appear in any output. `strict` runs with --strict, for cases
whose only findings are warnings. `generate` names files the test writes into a temporary copy
instead of committing them (`large_file`: a file just over the loader's size limit).

Every run is a separate process. By default (POSIX) the test process forks one child per run,
which changes into the case folder, points file descriptors 1 and 2 at files and calls
`clarion.cli.main`, exactly what `python -m clarion.cli` runs, without paying ~0.4 s of imports a
hundred times; a few tests (and CLARION_CASES_SUBPROCESS=1, for everything) start
`python -m clarion.cli` itself.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clarion.diagnostics import CODES
from clarion.load import MAX_FILE_BYTES

CASES = Path(__file__).parent / "cases"
BAD = sorted(p.name for p in (CASES / "bad").iterdir() if (p / "expected.json").is_file())
GOOD = sorted(p.name for p in (CASES / "good").iterdir() if (p / "config").is_dir())
DOCS = Path(__file__).parent.parent / "docs" / "diagnostics.md"
COMMAND = [sys.executable, "-m", "clarion.cli"]

# Codes no config can produce, each with the reason. Keep this empty unless a code truly cannot be
# triggered by files in a config directory.
UNREACHABLE_FROM_CONFIG: dict[str, str] = {
    "CL701": "scenario files, not configs: tests/cli/test_scenarios.py",
    "CL702": "scenario files, not configs: tests/cli/test_scenarios.py",
}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def expected_of(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CASES / "bad" / name / "expected.json").read_text("utf-8"))
    return data


def _generate(folder: Path, spec: dict[str, str]) -> None:
    for kind, relative in spec.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "large_file":
            line = b"# padding: this file is only here to be too large\n"
            head = b"version: 1\n"
            count = (MAX_FILE_BYTES - len(head)) // len(line) + 2
            with target.open("wb") as out:
                out.write(head)
                out.write(line * count)
            assert target.stat().st_size > MAX_FILE_BYTES
        else:  # pragma: no cover - a typo in expected.json
            raise ValueError(f"unknown generator {kind!r}")


def case_folder(name: str, scratch: Path) -> Path:
    """The folder to run in: the case itself, or a copy with its generated files."""
    folder = CASES / "bad" / name
    spec = expected_of(name).get("generate")
    if not spec:
        return folder
    copy = scratch / name
    if not copy.exists():
        shutil.copytree(folder, copy)
        _generate(copy, spec)
    return copy


def _args(name: str, fmt: str) -> list[str]:
    args = ["validate", "config", "--format", fmt]
    if expected_of(name).get("strict"):
        args.append("--strict")
    return args


def _subprocess(args: list[str], cwd: Path) -> Run:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("GITHUB_ACTIONS", None)
    done = subprocess.run(
        [*COMMAND, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )
    return Run(done.returncode, done.stdout, done.stderr)


def _forked(args: list[str], cwd: Path, scratch: Path) -> Run:
    """Run `clarion.cli.main(args)` in a forked child, in `cwd`, capturing fds 1 and 2."""
    out_path, err_path = scratch / f"out-{os.getpid()}", scratch / f"err-{os.getpid()}"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(out, 1)
            os.dup2(err, 2)
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115
            os.environ.pop("GITHUB_ACTIONS", None)
            os.environ["NO_COLOR"] = "1"
            os.chdir(cwd)
            from clarion.cli import main

            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 70
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    return Run(
        os.waitstatus_to_exitcode(status),
        out_path.read_text("utf-8", errors="replace"),
        err_path.read_text("utf-8", errors="replace"),
    )


REAL_SUBPROCESS = not hasattr(os, "fork") or os.environ.get("CLARION_CASES_SUBPROCESS") == "1"


def run_clarion(args: list[str], cwd: Path, scratch: Path) -> Run:
    return _subprocess(args, cwd) if REAL_SUBPROCESS else _forked(args, cwd, scratch)


def _warm_up(folders: Iterable[Path]) -> None:
    """Import everything a run may import lazily (phone numbers, locales, ...) before forking."""
    import clarion.cli  # noqa: F401
    from clarion.compile import build
    from clarion.load import LoadError

    for folder in [*folders, *(CASES / "good" / name for name in GOOD)]:
        try:
            build(folder / "config")
        except LoadError:
            pass
        except Exception:
            pass


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cases")


@pytest.fixture(scope="session")
def json_runs(scratch: Path) -> dict[str, Run]:
    """`clarion validate config --format json` for every bad case, each in its own process."""
    folders = {name: case_folder(name, scratch) for name in BAD}
    if not REAL_SUBPROCESS:
        _warm_up(folders.values())
        return {name: _forked(_args(name, "json"), f, scratch) for name, f in folders.items()}
    workers = max(2, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            name: pool.submit(_subprocess, _args(name, "json"), folder)
            for name, folder in folders.items()
        }
        return {name: future.result() for name, future in futures.items()}


def _key(d: dict[str, Any], with_column: bool) -> tuple[Any, ...]:
    key = (d["code"], d["severity"], d["file"], d["line"])
    return (*key, d.get("column")) if with_column else key


def assert_no_leak(run: Run, secrets: list[str], what: str) -> None:
    assert "Traceback" not in run.output, f"{what}: a traceback\n{run.output}"
    for secret in secrets:
        assert secret not in run.output, f"{what}: the secret {secret!r} is printed\n{run.output}"


@pytest.mark.parametrize("name", BAD)
def test_bad_case(name: str, json_runs: dict[str, Run], scratch: Path) -> None:
    expected = expected_of(name)
    secrets: list[str] = expected.get("secrets", [])
    run = json_runs[name]
    assert_no_leak(run, secrets, "json")
    assert run.returncode == 1, f"exit code {run.returncode}\n{run.output}"
    actual = json.loads(run.stdout)["diagnostics"]
    assert json.loads(run.stdout)["ok"] is False

    # Compare as multisets: a finding reported twice is a bug too. Columns are compared where
    # expected.json gives one.
    want = Counter(_key(d, "column" in d) for d in expected["diagnostics"])
    have = Counter(
        _key(a, "column" in e) for a, e in _pair_columns(actual, expected["diagnostics"])
    )
    assert have == want, (
        f"\nexpected: {sorted(want.elements(), key=str)}\n"
        f"actual:   {sorted(have.elements(), key=str)}\n"
        + "\n".join(
            f"  {a['code']} {a['file']}:{a['line']}:{a['column']} {a['message']}" for a in actual
        )
    )
    for want_d in expected["diagnostics"]:
        for text in want_d.get("contains", []):
            texts = [
                f"{a['message']}\n{a.get('hint') or ''}"
                for a in actual
                if _key(a, False) == _key(want_d, False)
            ]
            assert any(text in t for t in texts), (
                f"{want_d['code']}: no message or hint contains {text!r}: {texts}"
            )

    folder = case_folder(name, scratch)
    for fmt in ("text", "github", "sarif"):
        other = run_clarion(_args(name, fmt), folder, scratch)
        assert_no_leak(other, secrets, fmt)
        assert other.returncode == 1, f"{fmt}: exit code {other.returncode}\n{other.output}"
        for d in expected["diagnostics"]:
            assert d["code"] in other.output, f"{fmt}: {d['code']} not printed\n{other.output}"


def _pair_columns(
    actual: list[dict[str, Any]], expected: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each actual finding with the expected one it should be compared to (for `column`)."""
    out = []
    for a in actual:
        match = next((e for e in expected if _key(e, False) == _key(a, False)), {})
        out.append((a, match))
    return out


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.parametrize("name", ["literal_secret_password", "duplicate_event_two_files"])
def test_bad_case_real_subprocess(name: str, fmt: str, json_runs: dict[str, Run]) -> None:
    """`python -m clarion.cli` itself, as users run it, agrees with the forked runs."""
    run = _subprocess(_args(name, fmt), CASES / "bad" / name)
    assert run.returncode == 1, run.output
    assert_no_leak(run, expected_of(name).get("secrets", []), fmt)
    if fmt == "json":
        assert json.loads(run.stdout) == json.loads(json_runs[name].stdout)
    else:
        for d in expected_of(name)["diagnostics"]:
            assert f"error[{d['code']}]" in run.stdout


@pytest.mark.parametrize("name", GOOD)
def test_good_case(name: str, scratch: Path) -> None:
    folder = CASES / "good" / name
    run = _subprocess(["validate", "config", "--format", "json"], folder)
    assert "Traceback" not in run.output
    assert run.returncode == 0, run.output
    result = json.loads(run.stdout)
    assert result["ok"] is True
    assert result["diagnostics"] == [], result["diagnostics"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", result["digest"])
    strict = run_clarion(["validate", "config", "--strict"], folder, scratch)
    assert strict.returncode == 0, strict.output
    assert "Traceback" not in strict.output


def test_every_code_is_produced_by_a_bad_case(json_runs: dict[str, Run]) -> None:
    produced = {
        d["code"]
        for run in json_runs.values()
        if run.stdout.strip().startswith("{")
        for d in json.loads(run.stdout)["diagnostics"]
    }
    expected = {d["code"] for name in BAD for d in expected_of(name)["diagnostics"]}
    missing_case = set(CODES) - expected - set(UNREACHABLE_FROM_CONFIG)
    assert not missing_case, f"no bad case expects {sorted(missing_case)}"
    never = set(CODES) - produced - set(UNREACHABLE_FROM_CONFIG)
    assert not never, f"no bad case produces {sorted(never)}"
    assert set(UNREACHABLE_FROM_CONFIG) <= set(CODES)


def test_every_code_is_documented() -> None:
    text = DOCS.read_text("utf-8")
    headings = dict(re.findall(r"^## (CL\d{3}) ([a-z0-9-]+)\s*$", text, flags=re.M))
    missing = sorted(set(CODES) - set(headings))
    assert not missing, f"docs/diagnostics.md has no `## CLnnn name` heading for {missing}"
    wrong = {c: n for c, n in headings.items() if c in CODES and CODES[c][0] != n}
    assert not wrong, f"headings whose name is not the code's short name: {wrong}"
    unknown = sorted(set(headings) - set(CODES))
    assert not unknown, f"docs/diagnostics.md documents codes that do not exist: {unknown}"


def test_cases_are_minimal() -> None:
    """One code per bad case (a few also put a secret on a line with another finding)."""
    for name in BAD:
        codes = {d["code"] for d in expected_of(name)["diagnostics"]}
        assert codes, f"{name}: expected.json lists no diagnostic"
        assert len(codes) <= 2, f"{name}: more than two codes; split the case"


_SECTION = re.compile(r"^## (CL\d{3}) ", re.MULTILINE)
_CASE = re.compile(r"Broken \(`tests/cases/bad/([a-z0-9_]+)`\)")
_PRINTED = re.compile(r"^Clarion prints:\n\n```text\n(.*?)```", re.DOTALL | re.MULTILINE)


def _doc_examples() -> list[tuple[str, str, str, int, int]]:
    """(code, case, printed text, start, end) for each section of docs/diagnostics.md."""
    text = DOCS.read_text("utf-8")
    starts = [m.start() for m in _SECTION.finditer(text)] + [len(text)]
    out = []
    for begin, end in itertools.pairwise(starts):
        section = text[begin:end]
        code = section[3:8]
        case, printed = _CASE.search(section), _PRINTED.search(section)
        if case and printed:
            out.append(
                (
                    code,
                    case.group(1),
                    printed.group(1),
                    begin + printed.start(1),
                    begin + printed.end(1),
                )
            )
    return out


def test_documented_output_is_what_clarion_prints(scratch: Path) -> None:
    """docs/diagnostics.md shows real output. CLARION_UPDATE_DOCS=1 rewrites it from the cases."""
    examples = _doc_examples()
    assert len(examples) >= len(CODES) - len(UNREACHABLE_FROM_CONFIG)
    text = DOCS.read_text("utf-8")
    stale = []
    for code, case, printed, begin, end in reversed(examples):
        folder = case_folder(case, scratch)
        run = run_clarion(_args(case, "text"), folder, scratch)
        actual = (
            "\n".join(line for line in run.stdout.rstrip("\n").splitlines()).rstrip("\n") + "\n"
        )
        if printed != actual:
            stale.append(code)
            text = text[:begin] + actual + text[end:]
    if stale and os.environ.get("CLARION_UPDATE_DOCS") == "1":
        DOCS.write_text(text, "utf-8")
        return
    assert not stale, (
        f"docs/diagnostics.md is out of date for {sorted(stale)}; rerun with CLARION_UPDATE_DOCS=1"
    )
