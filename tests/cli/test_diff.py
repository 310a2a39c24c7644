"""`clarion diff`: snapshots of every kind of change in the three formats, git sides, failures."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from syrupy.assertion import SnapshotAssertion

from clarion.cli import cli
from clarion.cli import diff as diff_cli
from clarion.compile import build
from tests.conftest import EXAMPLES, ROOT

CASES = ROOT / "tests" / "cases" / "diff"
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "before").is_dir())
SILENT = {"no_effect", "reorganised"}  # no change for anyone: no output


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["diff", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
@pytest.mark.parametrize("name", NAMES)
def test_case(
    name: str, fmt: str, snapshot: SnapshotAssertion, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CASES / name)
    code, out, err = run("before", "after", "--format", fmt, "--exit-code")
    assert err == ""
    assert code == (0 if name in SILENT else 1)
    if name in SILENT and fmt != "json":
        assert out == ""
    if fmt == "json":
        assert json.loads(out)["changed"] is (name not in SILENT)
    assert "://" not in out and "{secret:" not in out  # no provider or device URL, ever
    assert out == snapshot


def test_every_kind_of_change_has_a_case() -> None:
    assert {
        "reach",
        "devices",
        "customer_messages",
        "routes",
        "flows",
        "consent",
        "templates",
        "no_effect",
        "reorganised",
        "pacing",
        "digests_and_throttles",
    } <= set(NAMES)


def test_without_exit_code_a_change_exits_0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CASES / "reach")
    code, out, _ = run("before", "after")
    assert code == 0 and "owner, email owner@example.com" in out


def test_the_same_config_prints_nothing() -> None:
    code, out, err = run(str(EXAMPLES), str(EXAMPLES), "--exit-code")
    assert (code, out, err) == (0, "", "")


def test_a_compiled_table_against_a_directory(tmp_path: Path) -> None:
    before = build(CASES / "flows" / "before")
    assert before.data is not None
    table = tmp_path / "table.json"
    table.write_bytes(before.data)
    code, out, _ = run(str(table), str(CASES / "flows" / "after"), "--format", "json")
    assert code == 0
    found = json.loads(out)
    assert found["old"]["digest"] == before.digest
    assert [i["name"] for i in found["flows"]["changed"]] == ["payment_reminder"]
    assert found["flows"]["changed"][0]["details"] == [
        "2 days before due at 09:00, skipped if late → 3 days before due at 10:00, skipped if late"
    ]


def test_both_directories_built_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large config builds its two sides in two processes; the answer is the same."""
    monkeypatch.chdir(CASES / "routes")
    expected = run("before", "after", "--format", "json")
    monkeypatch.setattr(diff_cli, "PARALLEL_BYTES", 0)
    assert run("before", "after", "--format", "json") == expected


def test_a_side_that_does_not_compile_exits_1_with_its_diagnostics(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(CASES / "reach" / "after", broken)
    main = broken / "main.yaml"
    main.write_text(main.read_text().replace("- dispute.*", "- dispute.opend"))
    code, out, err = run(str(CASES / "reach" / "before"), str(broken))
    assert code == 1 and out == ""
    assert "error[CL2" in err and "dispute.opend" in err and "1 error" in err


def test_a_file_that_is_not_a_table_exits_1(tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    code, _, err = run(str(junk), str(CASES / "reach" / "before"))
    assert code == 1 and "not a config directory or a Clarion routing table" in err


@pytest.mark.parametrize(
    "args",
    [
        ["missing-dir", "."],
        ["git:", "."],
        ["--format", "yaml", ".", "."],
        ["."],
    ],
)
def test_bad_arguments_exit_2(args: list[str], tmp_path: Path) -> None:
    code, _, err = run(*args)
    assert code == 2 and err


# --- git sides --------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with two commits of config/ (before, then after) and a table file."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    shutil.copytree(CASES / "flows" / "before", root / "config")
    result = build(root / "config")
    assert result.data is not None
    (root / "table.json").write_bytes(result.data)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "before")
    shutil.rmtree(root / "config")
    shutil.copytree(CASES / "flows" / "after", root / "config")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "after")
    monkeypatch.chdir(root)
    return root


def test_git_revisions(repo: Path) -> None:
    via_git = run("git:HEAD~1:config", "git:HEAD:config", "--exit-code")
    direct = run(str(CASES / "flows" / "before"), str(CASES / "flows" / "after"))
    assert via_git[0] == 1
    body = via_git[1].splitlines()[2:]
    assert body == direct[1].splitlines()[2:]
    assert via_git[1].startswith("--- git:HEAD~1:config (sha256:")


def test_git_revision_against_the_working_tree_from_a_subdirectory(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo / "config")
    (repo / "config" / "main.yaml").write_text(
        (repo / "config" / "main.yaml").read_text().replace("offset: -3d", "offset: -4d")
    )
    code, out, _ = run("git:HEAD", ".", "--format", "json")
    assert code == 0
    assert json.loads(out)["flows"]["changed"][0]["details"] == [
        "3 days before due at 10:00, skipped if late → 4 days before due at 10:00, skipped if late"
    ]
    assert (
        subprocess.run(
            ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        == "M config/main.yaml"
    )


def test_git_table_blob(repo: Path) -> None:
    code, out, _ = run("git:HEAD:table.json", "config", "--format", "json")
    assert code == 0
    assert json.loads(out)["flows"]["added"][0]["name"] == "renewal_followup"


def test_git_side_that_does_not_compile_names_git_paths(repo: Path) -> None:
    main = repo / "config" / "main.yaml"
    main.write_text(main.read_text().replace("template: payment_reminder", "template: nope"))
    git(repo, "commit", "-qam", "broken")
    code, _, err = run("git:HEAD:config", "git:HEAD~1:config")
    assert code == 1
    assert "git:HEAD:config/main.yaml:" in err and "clarion-diff-" not in err


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("git:nosuchrev", "unknown revision"),
        ("git:HEAD:nowhere", "nowhere"),
        ("git:HEAD:../..", "outside the repository"),
    ],
)
def test_bad_git_sides_exit_2(repo: Path, spec: str, message: str) -> None:
    code, _, err = run(spec, "config")
    assert code == 2 and message in err
