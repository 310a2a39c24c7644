"""GitOps: the pre-commit hook and the GitHub Action run what they say, and the schema helps
editors (title, description and examples on every key; a modeline on every example file)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from clarion.load import load_text
from tests.conftest import EXAMPLES, ROOT

BIN = Path(sys.executable).parent
SCHEMA_FILE = ROOT / "schemas" / "clarion.schema.json"
BASH = shutil.which("bash")


def break_config(config: Path) -> None:
    """A typo in a template name: CL206 on customer.yaml."""
    path = config / "customer.yaml"
    text = path.read_text()
    assert "template: receipt\n" in text
    path.write_text(text.replace("template: receipt\n", "template: reciept\n", 1))


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


# --- pre-commit -------------------------------------------------------------------------------


def hook() -> dict[str, Any]:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (found,) = [h for h in hooks if h["id"] == "clarion-validate"]
    return dict(found)


def test_the_hook_is_described_as_pre_commit_expects() -> None:
    found = hook()
    assert found["language"] == "python"
    assert found["entry"] == "clarion validate"
    assert found["pass_filenames"] is False
    files = re.compile(found["files"])
    for name in ("config/team.yaml", "config/a.yml", "config/templates/es/receipt.email.j2"):
        assert files.search(name), name
    for name in ("src/app.py", "README.md", "config/yaml.txt"):
        assert not files.search(name), name


def run_hook(config: Path) -> subprocess.CompletedProcess[str]:
    # pre-commit runs `entry` + `args` from the repository root; args name the config folder.
    command = [*shlex.split(hook()["entry"]), config.name]
    return subprocess.run(
        command, cwd=config.parent, env=clean_env(), capture_output=True, text=True, check=False
    )


def test_the_hook_fails_a_broken_config(examples_copy: Path) -> None:
    break_config(examples_copy)
    result = run_hook(examples_copy)
    assert result.returncode == 1
    assert "config/customer.yaml" in result.stdout
    assert "error[CL206] template reciept.email does not exist" in result.stdout
    assert "did you mean 'receipt'?" in result.stdout


def test_the_hook_passes_a_valid_config(examples_copy: Path) -> None:
    result = run_hook(examples_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stderr


# --- the GitHub Action ------------------------------------------------------------------------


def action() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "action.yml").read_text()))


def steps() -> list[dict[str, Any]]:
    return list(action()["runs"]["steps"])


EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def expand(value: str, inputs: dict[str, str]) -> str:
    """The few expressions the action's `env:` uses: inputs.* and github.action_path."""

    def one(match: re.Match[str]) -> str:
        expression = match.group(1)
        if expression.startswith("inputs."):
            return inputs[expression.removeprefix("inputs.")]
        if expression == "github.action_path":
            return str(ROOT)
        raise AssertionError(f"the test does not know {expression!r}")

    return EXPRESSION.sub(one, value)


def condition_holds(step: dict[str, Any], inputs: dict[str, str]) -> bool:
    condition = step.get("if")
    if condition is None:
        return True
    match = re.fullmatch(r"inputs\.([\w-]+) == '([^']*)'", condition.strip())
    assert match, f"the test cannot evaluate if: {condition}"
    return inputs[match.group(1)] == match.group(2)


class Runner:
    """Runs `run:` steps as GitHub does (`bash --noprofile --norc -eo pipefail`)."""

    def __init__(self, tmp: Path, workspace: Path) -> None:
        self.workspace = workspace
        self.path: Path | None = None  # a folder put first on PATH
        self.summary = tmp / "summary.md"
        self.output = tmp / "output.txt"
        self.temp = tmp / "runner-temp"
        self.temp.mkdir()
        for file in (self.summary, self.output):
            file.write_text("")

    def run(self, step: dict[str, Any], inputs: dict[str, str]) -> subprocess.CompletedProcess[str]:
        assert step.get("shell") == "bash"
        env = clean_env(
            GITHUB_ACTIONS="true",
            GITHUB_STEP_SUMMARY=str(self.summary),
            GITHUB_OUTPUT=str(self.output),
            RUNNER_TEMP=str(self.temp),
            GITHUB_WORKSPACE=str(self.workspace),
        )
        env.update({k: expand(str(v), inputs) for k, v in step.get("env", {}).items()})
        if self.path is not None:
            env["PATH"] = f"{self.path}{os.pathsep}{env['PATH']}"
        script = self.temp / "step.sh"
        script.write_text(step["run"])
        assert BASH is not None
        return subprocess.run(
            [BASH, "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    def outputs(self) -> dict[str, str]:
        lines = self.output.read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)


def defaults(**overrides: str) -> dict[str, str]:
    inputs = {
        name: str(spec.get("default", ""))
        for name, spec in action()["inputs"].items()
        if "${{" not in str(spec.get("default", ""))
    }
    inputs["base-ref"] = ""
    inputs.update(overrides)
    return inputs


def validate_steps() -> list[dict[str, Any]]:
    found = [s for s in steps() if "run" in s and "clarion validate" in s["run"]]
    assert {s.get("id") for s in found} == {"sarif", "validate"}
    return found


def test_the_action_is_composite_and_installs_itself() -> None:
    spec = action()
    assert spec["runs"]["using"] == "composite"
    assert set(spec["inputs"]) >= {"directory", "python-version", "sarif", "base-ref"}
    assert "diff-file" in spec["outputs"]
    uses = [s.get("uses", "") for s in steps()]
    assert any(u.startswith("actions/setup-python@") for u in uses)
    assert any(u.startswith("github/codeql-action/upload-sarif@") for u in uses)
    install = next(s for s in steps() if "pip install" in s.get("run", ""))
    assert "${{ github.action_path }}" in json.dumps(install)
    for step in steps():  # inputs reach scripts through env:, never pasted into the script
        assert "${{" not in step.get("run", ""), step.get("name")


def test_the_action_fails_a_broken_config_with_annotations(
    tmp_path: Path, examples_copy: Path
) -> None:
    break_config(examples_copy)
    runner = Runner(tmp_path, examples_copy.parent)
    inputs = defaults(directory="config", sarif="true")
    codes = {}
    for step in validate_steps():
        assert condition_holds(step, inputs)
        result = runner.run(step, inputs)
        codes[step["id"]] = result.returncode
        if step["id"] == "validate":
            annotations = result.stdout
    assert codes == {"sarif": 0, "validate": 1}  # findings fail only the annotating step
    assert "::error file=config/customer.yaml,line=" in annotations
    assert "title=CL206::template reciept.email does not exist" in annotations
    summary = runner.summary.read_text()
    assert "does not validate" in summary and "error[CL206]" in summary
    sarif = json.loads(Path(runner.outputs()["file"]).read_text())
    assert "CL206" in [r["ruleId"] for r in sarif["runs"][0]["results"]]


def test_the_action_passes_a_valid_config(tmp_path: Path, examples_copy: Path) -> None:
    runner = Runner(tmp_path, examples_copy.parent)
    inputs = defaults(directory="config")
    ran = []
    for step in validate_steps():
        if not condition_holds(step, inputs):
            continue
        result = runner.run(step, inputs)
        assert result.returncode == 0, result.stdout + result.stderr
        ran.append(step["id"])
    assert ran == ["validate"]  # SARIF is off by default
    assert runner.summary.read_text() == ""


def test_strict_input_fails_on_warnings(tmp_path: Path, examples_copy: Path) -> None:
    (examples_copy / "templates" / "unused.email.j2").write_text("Nobody sends me\n")
    runner = Runner(tmp_path, examples_copy.parent)
    (step,) = [s for s in validate_steps() if s["id"] == "validate"]
    assert runner.run(step, defaults(directory="config")).returncode == 0
    result = runner.run(step, defaults(directory="config", strict="true"))
    assert result.returncode == 1
    assert "::warning file=config/templates/unused.email.j2" in result.stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_diff_step_compares_with_the_base_commit(tmp_path: Path) -> None:
    """The diff step's own logic (finding the base, the git: argument, outputs), with a stand-in
    `clarion diff` that records its arguments."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo / "config", ignore=shutil.ignore_patterns(".clarion"))
    git = [
        "git",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "-c",
        "commit.gpgsign=false",
    ]
    env = clean_env()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "add", "."], cwd=repo, check=True, env=env)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=repo, check=True, env=env)
    base = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, env=env, capture_output=True, text=True
    ).stdout.strip()
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "clarion").write_text('#!/usr/bin/env bash\necho "## diff"\necho "args: $*"\nexit 1\n')
    (fake / "clarion").chmod(0o755)
    runner = Runner(tmp_path, repo)
    (step,) = [s for s in steps() if s.get("id") == "diff"]
    inputs = defaults(directory="config", **{"base-ref": "main"})
    assert step["if"] == "inputs.base-ref != ''"
    runner.path = fake
    result = runner.run(step, inputs)
    assert result.returncode == 0, result.stderr
    outputs = runner.outputs()
    assert outputs["changed"] == "true"
    written = Path(outputs["file"]).read_text()
    assert f"args: diff git:{base}:config config --format markdown --exit-code" in written
    assert runner.summary.read_text() == written


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_diff_step_end_to_end(tmp_path: Path) -> None:
    """With the real `clarion diff`: a pull request that adds a route."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo / "config", ignore=shutil.ignore_patterns(".clarion"))
    env = clean_env()
    git = [
        "git",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "-c",
        "commit.gpgsign=false",
    ]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "add", "."], cwd=repo, check=True, env=env)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=repo, check=True, env=env)
    with (repo / "config" / "routes.yaml").open("a") as routes:
        routes.write(
            "\n  - name: failed-payouts-to-on-call\n"
            "    events: [payout.failed]\n    to: [support]\n    channels: [sms]\n"
        )
    runner = Runner(tmp_path, repo)
    (step,) = [s for s in steps() if s.get("id") == "diff"]
    result = runner.run(step, defaults(directory="config", **{"base-ref": "main"}))
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = runner.outputs()
    assert outputs["changed"] == "true"
    written = Path(outputs["file"]).read_text()
    assert "failed-payouts-to-on-call" in written
    assert "payout.failed" in written
    assert runner.summary.read_text() == written


# --- editors ----------------------------------------------------------------------------------

LEAF_SKIP = {"examples", "default", "const", "enum"}


def has_structure(node: Any) -> bool:
    """Whether a property's schema refers to, or spells out, objects with keys of their own."""
    if isinstance(node, dict):
        return (
            "$ref" in node
            or "properties" in node
            or any(has_structure(v) for k, v in node.items() if k not in LEAF_SKIP)
        )
    if isinstance(node, list):
        return any(has_structure(item) for item in node)
    return False


def properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.get("properties", {}).items():
                found.append((f"{where}.{key}", value))
            for key, value in node.items():
                if key not in LEAF_SKIP:
                    walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(schema, "schema")
    return found


def test_every_key_has_a_title_a_description_and_examples() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    found = properties(schema)
    assert len(found) > 40
    problems = []
    for where, spec in found:
        missing = [k for k in ("title", "description") if not spec.get(k)]
        if not has_structure(spec) and not spec.get("examples"):
            missing.append("examples")
        if missing:
            problems.append(f"{where}: no {', '.join(missing)}")
    assert not problems, "\n".join(problems)


def test_the_examples_in_the_schema_are_valid() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    for where, spec in properties(schema):
        checker = jsonschema.Draft202012Validator({**spec, "$defs": schema["$defs"]})
        for example in spec.get("examples", []):
            errors = [e.message for e in checker.iter_errors(example)]
            assert not errors, f"{where}: example {example!r}: {errors}"


def example_files() -> list[Path]:
    return sorted(
        p
        for p in EXAMPLES.rglob("*.y*ml")
        if p.relative_to(EXAMPLES).parts[0] != "tests"
        and not any(part.startswith(".") for part in p.relative_to(EXAMPLES).parts)
    )


def test_example_files_point_editors_at_the_schema() -> None:
    files = example_files()
    assert len(files) >= 8
    for path in files:
        first = path.read_text().splitlines()[0]
        prefix = "# yaml-language-server: $schema="
        assert first.startswith(prefix), path
        target = (path.parent / first.removeprefix(prefix)).resolve()
        assert target == SCHEMA_FILE.resolve(), f"{path}: {first}"
    for path in (EXAMPLES / "tests").rglob("*.yaml"):
        assert "yaml-language-server" not in path.read_text(), f"{path} is a scenario file"


def test_each_example_file_alone_passes_the_schema() -> None:
    """What an editor does: one file at a time, YAML 1.2, against the shipped schema."""
    checker = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    for path in example_files():
        loaded = load_text(path.read_text(), path.name)
        assert loaded.document is not None, path
        errors = [e.message for e in checker.iter_errors(loaded.document.data)]
        assert not errors, f"{path}: {errors}"
