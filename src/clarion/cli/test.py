"""`clarion test [DIR] [SCENARIO...]`: prove customer journeys on a simulated clock."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import click

from clarion.cli import reporters
from clarion.cli.options import EnvironmentProblem, build_or_exit, source_line_of
from clarion.diagnostics import Diagnostic
from clarion.load import display_path

FORMATS = ("text", "json", "junit")


@click.command("test")
@click.argument("directory", required=False, default=".", type=click.Path(path_type=Path))
@click.argument("scenarios", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
def test_command(directory: Path, scenarios: tuple[Path, ...], fmt: str) -> None:
    """Run scenario files (default: DIR/tests/**/*.yaml) against the config in DIR."""
    from clarion.runtime.scenario import Result, Scenario, load_scenario, run_scenario
    from clarion.runtime.tableindex import TableIndex

    result = build_or_exit(directory)
    if result.table is None or result.data is None:
        click.echo(reporters.text(result.diagnostics, source_line_of(result), False), err=True)
        click.echo(f"{directory}: {reporters.summary(result.diagnostics)}", err=True)
        raise SystemExit(1)
    table = TableIndex.from_table(result.table, result.data)
    # A scenario's failed sends (a provider taken down) are part of its story, and its results
    # say what happened: the runtime's own log lines would only be noise here.
    logging.getLogger("clarion").addHandler(logging.NullHandler())
    files = list(scenarios) or sorted((directory / "tests").rglob("*.y*ml"))
    files = [f for f in files if f.suffix in (".yaml", ".yml")]
    if not files:
        raise EnvironmentProblem(f"no scenario files (looked in {directory / 'tests'})")
    results: list[Result] = []
    broken: list[tuple[str, list[Diagnostic]]] = []
    for path in files:
        if not path.is_file():
            raise EnvironmentProblem(f"{path}: no such file")
        loaded = load_scenario(path, display_path(path))
        if isinstance(loaded, Scenario):
            results.append(run_scenario(table, loaded))
        else:
            broken.append((display_path(path), loaded))
    if fmt == "json":
        click.echo(json.dumps(_as_json(results, broken), indent=2))
    elif fmt == "junit":
        click.echo(_as_junit(results, broken))
    else:
        _as_text(results, broken)
    failed = any(not r.passed for r in results) or bool(broken)
    raise SystemExit(1 if failed else 0)


def _as_text(results: list[Any], broken: list[tuple[str, list[Diagnostic]]]) -> None:
    color = sys.stdout.isatty()
    for file, diagnostics in broken:
        click.echo(click.style("BROKEN", fg="red", bold=True) if color else "BROKEN", nl=False)
        click.echo(f"  {file}")
        click.echo(reporters.text(diagnostics, lambda d: None, color))
    for result in results:
        label = "PASS" if result.passed else "FAIL"
        if color:
            label = click.style(label, fg="green" if result.passed else "red", bold=True)
        click.echo(f"{label}  {result.file}  {result.name}")
        for failure in result.failures:
            where = f"{failure.location}: " if failure.location else ""
            click.echo(f"  {where}step {failure.step} ({failure.kind}): {failure.message}")
            if failure.expected or failure.actual:
                click.echo("    expected:")
                for item in failure.expected or [{}]:
                    click.echo(f"      - {_flow(item)}" if item else "      (nothing)")
                click.echo("    actual:")
                for item in failure.actual or [{}]:
                    click.echo(f"      - {_flow(item)}" if item else "      (nothing)")
    passed = sum(1 for r in results if r.passed)
    failed = len(results) - passed
    tail = f", {len(broken)} broken" if broken else ""
    click.echo(f"{passed} passed, {failed} failed{tail}")


def _flow(item: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in item.items()) + "}"


def _as_json(results: list[Any], broken: list[tuple[str, list[Diagnostic]]]) -> dict[str, Any]:
    return {
        "passed": sum(1 for r in results if r.passed),
        "failed": sum(1 for r in results if not r.passed),
        "broken": [{"file": f, "diagnostics": [d.as_json() for d in ds]} for f, ds in broken],
        "scenarios": [
            {
                "file": r.file,
                "name": r.name,
                "status": "passed" if r.passed else "failed",
                "seconds": round(r.seconds, 3),
                "failures": [
                    {
                        "step": f.step,
                        "kind": f.kind,
                        "message": f.message,
                        "line": f.location.line if f.location else None,
                        "expected": f.expected,
                        "actual": f.actual,
                    }
                    for f in r.failures
                ],
            }
            for r in results
        ],
    }


def _as_junit(results: list[Any], broken: list[tuple[str, list[Diagnostic]]]) -> str:
    suite = ElementTree.Element(
        "testsuite",
        name="clarion scenarios",
        tests=str(len(results) + len(broken)),
        failures=str(sum(1 for r in results if not r.passed)),
        errors=str(len(broken)),
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for r in results:
        case = ElementTree.SubElement(
            suite, "testcase", classname=r.file, name=r.name, time=f"{r.seconds:.3f}"
        )
        for f in r.failures:
            node = ElementTree.SubElement(case, "failure", message=f"step {f.step}: {f.message}")
            node.text = json.dumps({"expected": f.expected, "actual": f.actual}, indent=2)
    for file, diagnostics in broken:
        case = ElementTree.SubElement(suite, "testcase", classname=file, name=file)
        node = ElementTree.SubElement(case, "error", message=diagnostics[0].message)
        node.text = "\n".join(f"{d.location}: {d.code} {d.message}" for d in diagnostics)
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)
