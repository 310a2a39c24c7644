"""`clarion test`: pass or fail per scenario, a readable diff, located errors, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner

from clarion.cli import cli
from tests.conftest import EXAMPLES

PASSING = """\
name: the reminder goes out two days ahead at 09:00
start: 2026-03-01T08:00:00Z
steps:
  - event:
      type: subscription.renewal_scheduled
      id: evt_1
      data:
        {subscription_id: sub_1, plan: Premium, due_date: "2026-03-10", amount: 2900, currency: EUR}
      contact: {id: cus_1, email: ana@example.com, timezone: Europe/Madrid}
  - advance: 10d
  - expect_skipped:
      - {recipient: "contact:cus_1", channel: sms, reason: no_address}
"""

FAILING = """\
name: a wrong expectation
start: 2026-03-01T08:00:00Z
steps:
  - event:
      type: subscription.renewal_scheduled
      id: evt_1
      data:
        {subscription_id: sub_1, plan: Premium, due_date: "2026-03-10", amount: 2900, currency: EUR}
      contact: {id: cus_1, email: ana@example.com, timezone: Europe/Madrid}
  - advance: 10d
  - expect:
      - {to: ana@example.com, channel: email, at: "2026-03-08T10:00:00+01:00"}
"""

BROKEN = """\
name: broken
start: yesterday-ish
steps:
  - advance: 3 fortnights
  - expectt: []
"""


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.fixture
def config(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("tests", ".clarion"))
    (target / "tests").mkdir()
    return target


def test_a_passing_scenario(config: Path) -> None:
    (config / "tests" / "ok.yaml").write_text(PASSING)
    code, out = run("test", str(config))
    assert code == 0, out
    assert "PASS" in out and "1 passed, 0 failed" in out


def test_a_failing_scenario_prints_the_diff_and_exits_1(config: Path) -> None:
    (config / "tests" / "wrong.yaml").write_text(FAILING)
    code, out = run("test", str(config))
    assert code == 1
    assert "FAIL" in out and "wrong.yaml:11:5: step 3 (expect)" in out
    assert "expected:" in out and "at: 2026-03-08T10:00:00+01:00" in out
    assert "actual:" in out and "at: 2026-03-08T08:00:00Z" in out  # 09:00 Madrid
    assert "Traceback" not in out


def test_a_broken_scenario_file_gives_located_errors(config: Path) -> None:
    (config / "tests" / "broken.yaml").write_text(BROKEN)
    code, out = run("test", str(config))
    assert code == 1
    assert "BROKEN" in out and "broken.yaml:5:5" in out and "CL701" in out
    assert "Traceback" not in out
    (config / "tests" / "broken.yaml").write_text(BROKEN.replace("expectt", "expect"))
    code, out = run("test", str(config))
    assert code == 1
    assert "broken.yaml:2:8: error[CL702]" in out and "broken.yaml:4:14: error[CL702]" in out


def test_not_yaml_at_all(config: Path) -> None:
    (config / "tests" / "junk.yaml").write_text("name: [unclosed\n")
    code, out = run("test", str(config))
    assert code == 1 and "CL003" in out and "Traceback" not in out


def test_formats(config: Path) -> None:
    (config / "tests" / "ok.yaml").write_text(PASSING)
    (config / "tests" / "wrong.yaml").write_text(FAILING)
    code, out = run("test", str(config), "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert (report["passed"], report["failed"]) == (1, 1)
    [failed] = [s for s in report["scenarios"] if s["status"] == "failed"]
    assert failed["failures"][0]["line"] == 11
    code, out = run("test", str(config), "--format", "junit")
    suite = ElementTree.fromstring(out.split("?>", 1)[1] if "?>" in out else out)
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    assert len(suite.findall("testcase/failure")) == 1


def test_no_scenarios_is_a_usage_problem(config: Path) -> None:
    assert run("test", str(config))[0] == 2


def test_the_examples_tell_every_seed_story() -> None:
    code, out = run("test", str(EXAMPLES))
    assert code == 0, out


def test_the_examples_stories_hold_on_postgresql(postgres_url: str) -> None:
    """The examples' stories (config and pacing) told to the PostgreSQL store, each on its own
    schema."""
    from clarion.compile import build
    from clarion.runtime import TableIndex
    from clarion.runtime.scenario import Scenario, load_scenario, run_scenario
    from clarion.runtime.store.postgres import PostgresStore
    from tests.postgres import private_schema

    told = 0
    for config in (EXAMPLES, EXAMPLES.parent / "pacing"):
        result = build(config)
        assert result.table is not None and result.data is not None
        table = TableIndex.from_table(result.table, result.data)
        for path in sorted((config / "tests").glob("*.yaml")):
            scenario = load_scenario(path, path.name)
            assert isinstance(scenario, Scenario), scenario
            with private_schema() as url:
                outcome = run_scenario(table, scenario, PostgresStore(url))
            assert not outcome.failures, (path.name, outcome.failures)
            told += 1
    assert told >= 30


PROVIDERS = """\
name: the unpaid reminder when the SMS providers go down and come back
start: 2026-03-10T09:30:00+01:00
steps:
  - providers: {smss: down}
  - providers: {sms: [down, down]}
  - event:
      type: subscription.unpaid
      id: evt_down
      data: {subscription_id: s, plan: P, amount: 1, currency: EUR, first_purchase: false, pay_url: "https://x.example/p"}
      contact: {id: cus_down, phone: "+34612345670"}
  - expect:
      - {recipient: owner, channel: email}
      - {recipient: owner, channel: in_app}
  - providers: {sms: [down, up]}
  - advance: 15m
  - expect:
      - {to: "+34612345670", channel: sms}
"""


def test_providers_and_read_steps(config: Path) -> None:
    (config / "tests" / "providers.yaml").write_text(PROVIDERS)
    code, out = run("test", str(config))
    assert code == 1  # only the unknown channel fails the scenario
    assert "providers.yaml:4:5: step 1 (providers): unknown channel 'smss'" in out
    assert out.count("step ") == 1, out
    assert "send failed" not in out  # the runtime's own log lines stay out of the report
    (config / "tests" / "providers.yaml").write_text(
        PROVIDERS.replace("  - providers: {smss: down}\n", "  - read: support\n")
    )
    code, out = run("test", str(config))
    assert code == 0, out


def test_a_step_of_unknown_kind_names_the_new_kinds(config: Path) -> None:
    (config / "tests" / "odd.yaml").write_text(
        "name: odd\nstart: 2026-03-10T09:30:00Z\nsteps:\n  - {advance: 1h, read: support}\n"
    )
    code, out = run("test", str(config))
    assert code == 1
    assert "must have exactly one of event, advance, expect, expect_skipped" in out
    assert "read, providers" in out
