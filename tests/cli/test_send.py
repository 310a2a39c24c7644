"""`clarion send` against a real `clarion serve --dry-run` process on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from itertools import cycle
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from clarion.cli import cli
from clarion.compile import build
from tests.conftest import EXAMPLES

TOKEN = "test-token-7f3k"
# The sidecar is on loopback: never through a proxy the environment may name.
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("sidecar")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "clarion", "serve", str(EXAMPLES), "--dry-run", "--no-watch",
        "--port", str(port), "--store", f"sqlite:///{folder / 's.db'}", "--log-format", "json",
    ]  # fmt: skip
    log = folder / "serve.log"
    env = {**os.environ, "CLARION_TOKEN": TOKEN}
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, f"clarion serve exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"clarion serve not up:\n{log.read_text()}"
            try:
                with LOCAL.open(f"{url}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        yield url
    finally:
        process.kill()
        process.wait(10)


@pytest.fixture(scope="module")
def examples() -> dict[str, dict[str, Any]]:
    """Each event type's `example` data, and whether it may come in a batch."""
    result = build(EXAMPLES)
    assert result.table is not None
    return {
        name: {"data": spec.example, "batch": spec.batch}
        for name, spec in result.table.events.items()
        if spec.example is not None
    }


def send(*args: str, stdin: str | None = None, token: str | None = TOKEN) -> tuple[int, str, str]:
    env = {"CLARION_TOKEN": token} if token else {"CLARION_TOKEN": ""}
    result = CliRunner().invoke(cli, ["send", *args], input=stdin, env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def fetch(url: str, event_id: str) -> int:
    request = urllib.request.Request(
        f"{url}/v1/events/{event_id}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with LOCAL.open(request, timeout=5) as answer:
        return int(answer.status)


def test_one_event(sidecar: str, examples: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    event = {"type": "payment.failed", "id": "one_1", "data": examples["payment.failed"]["data"]}
    path.write_text(json.dumps(event, indent=2))  # one object over several lines
    code, out, err = send(str(path), "--url", sidecar)
    assert code == 0, err
    assert json.loads(out) == {"id": "one_1", "status": "accepted"}
    # the same event again: the first answer, still a success
    code, out, _ = send("-", "--url", sidecar, stdin=json.dumps(event))
    assert code == 0 and json.loads(out)["id"] == "one_1"
    assert fetch(sidecar, "one_1") == 200


def test_one_rejected_event_is_exit_1_with_its_code(sidecar: str) -> None:
    event = {"type": "payment.faild", "id": "one_2", "data": {}}
    code, out, err = send("--url", sidecar, stdin=json.dumps(event))
    assert code == 1
    assert out == ""
    assert "error[unknown_event_type]" in err and "/type" in err


def test_json_lines_in_batches_with_bad_lines(
    sidecar: str, examples: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    batchable = cycle(sorted(name for name, spec in examples.items() if spec["batch"]))
    one_at_a_time = next(name for name, spec in examples.items() if not spec["batch"])
    lines: list[str] = []
    bad: dict[int, str] = {}  # line number -> expected code
    for n in range(1200):
        number = len(lines) + 1
        if n == 10:
            lines.append("{not json")
            bad[number] = "invalid_json"
        elif n == 600:
            lines.append('{"type": "payment.failed", "id": "x"')  # cut short
            bad[number] = "invalid_json"
        elif n == 700:
            data = {**examples["payment.failed"]["data"], "amount": -1}
            lines.append(json.dumps({"type": "payment.failed", "id": f"bulk_{n}", "data": data}))
            bad[number] = "invalid_data"
        elif n == 1100:
            data = examples[one_at_a_time]["data"]
            lines.append(json.dumps({"type": one_at_a_time, "id": f"bulk_{n}", "data": data}))
            bad[number] = "batch_not_allowed"
        else:
            kind = next(batchable)
            data = examples[kind]["data"]
            lines.append(json.dumps({"type": kind, "id": f"bulk_{n}", "data": data}))
        if n % 300 == 0:
            lines.append("   ")  # blank lines are skipped, and still counted as lines
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")

    code, out, err = send(str(path), "--url", sidecar, "--batch-size", "500")
    assert code == 1, err
    report = out.splitlines()
    assert report[0] == f"accepted {1200 - len(bad)}, rejected {len(bad)}"
    for number, expected in bad.items():
        assert any(line.startswith(f"line {number}: error[{expected}]") for line in report), (
            number,
            out,
        )
    assert "Traceback" not in out + err
    invalid = next(line for line in report if "error[invalid_data]" in line)
    assert "/data/amount" in invalid and "/700/" not in invalid  # pointer within the line
    assert fetch(sidecar, "bulk_0") == 200 and fetch(sidecar, "bulk_1199") == 200

    # Only good lines, from standard input, in batches of 1000: all accepted (again), exit 0.
    good = [line for i, line in enumerate(lines, 1) if i not in bad]
    code, out, err = send("--url", sidecar, "--batch-size", "1000", stdin="\n".join(good))
    assert code == 0, err
    assert out.splitlines()[0] == f"accepted {len([g for g in good if g.strip()])}, rejected 0"


def test_empty_input_sends_nothing(sidecar: str) -> None:
    code, out, err = send("--url", sidecar, stdin="\n  \n")
    assert code == 0
    assert out == ""
    assert "no events" in err


def test_wrong_or_missing_token_is_exit_2(sidecar: str) -> None:
    event = json.dumps({"type": "payment.failed", "id": "tok_1", "data": {}})
    code, _, err = send("--url", sidecar, stdin=event, token="wrong")
    assert code == 2
    assert "401" in err and "CLARION_TOKEN" in err and len(err.strip().splitlines()) == 1
    code, _, err = send("--url", sidecar, stdin=event + "\n" + event, token=None)
    assert code == 2
    assert "401" in err


def test_nothing_listening_is_exit_2() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = send("--url", url, stdin='{"type": "payment.failed", "id": "e"}')
    assert code == 2
    assert out == ""
    assert "cannot reach the sidecar" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args", [["--batch-size", "1001"], ["--batch-size", "0"], ["--url", "ftp://example.com"]]
)
def test_usage_errors_are_exit_2(args: list[str]) -> None:
    code, _, _ = send(*args, stdin="{}")
    assert code == 2


def test_missing_file_is_exit_2(tmp_path: Path) -> None:
    code, _, err = send(str(tmp_path / "nope.jsonl"))
    assert code == 2
    assert "nope.jsonl" in err


def test_lines_are_streamed_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from clarion.cli import send as send_module

    monkeypatch.setattr(send_module, "CHUNK", 7)
    monkeypatch.setattr(send_module, "EVENT_BYTES", 20)
    text = b'{"a": 1}\n\n{"b": "' + b"x" * 50 + b'"}\n{"c": 3}\r\n{"d": 4}'
    got = list(send_module._lines(text[:5], io.BytesIO(text[5:])))
    assert [line for line, _ in got] == [b'{"a": 1}', b"", None, b'{"c": 3}\r', b'{"d": 4}']
    assert sum(taken for _, taken in got) == len(text)  # the progress bar counts every byte
