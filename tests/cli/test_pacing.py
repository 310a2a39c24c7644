"""Pacing through the commands: the example's scenarios pass, and fail when a digest or a
throttle is taken away; `explain` shows what pacing does to one event."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from clarion.cli import cli
from tests.conftest import ROOT

PACING = ROOT / "examples" / "pacing"


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)
    return result.exit_code, result.output


def test_the_pacing_scenarios_pass() -> None:
    code, out = run("validate", str(PACING))
    assert code == 0, out
    code, out = run("test", str(PACING))
    assert code == 0, out
    assert "5 passed, 0 failed" in out


def test_without_the_digest_and_the_throttle_the_scenarios_fail(tmp_path: Path) -> None:
    copy = tmp_path / "pacing"
    shutil.copytree(PACING, copy)
    config = copy / "clarion.yaml"
    text = config.read_text("utf-8")
    text = text.replace(', digest: {every: 1d, at: "09:00"}', "")
    text = text.replace('    throttle: {limit: 3, per: 1h, key: "{{ contact.id }}"}', "")
    config.write_text(text, "utf-8")
    code, out = run("test", str(copy))
    assert code == 1
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert {line.split()[1].rsplit("/", 1)[-1] for line in failed} >= {
        "finance_daily_digest.yaml",
        "order_status_throttle.yaml",
    }


def test_explain_shows_the_digest_and_the_throttle() -> None:
    payout = {
        "type": "payout.initiated",
        "id": "evt_1",
        "data": {"payout_id": "po_1", "amount": 2_000_000, "currency": "EUR"},
    }
    code, out = run(
        "explain",
        str(PACING),
        "--event",
        "-",
        "--at",
        "2026-03-02T10:00:00Z",
        "--format",
        "json",
        stdin=json.dumps(payout),
    )
    assert code == 0, out
    rows = {(d["recipient"], d["status"], d["template"]): d for d in json.loads(out)["deliveries"]}
    folded = rows[("finance", "skipped", "payout.initiated")]
    assert folded["reason"] == "digested"
    assert "2026-03-03T08:00:00Z" in folded["detail"]  # 09:00 in Madrid
    digest = rows[("finance", "scheduled", "digest")]
    assert digest["source"] == "digest:finance/email"
    owner = rows[("owner", "planned", "payout.initiated")]
    assert owner["detail"] == "throttle: at most 2 per 1h for 'payout.initiated'"
    code, text = run(
        "explain",
        str(PACING),
        "--event",
        "-",
        "--at",
        "2026-03-02T10:00:00Z",
        stdin=json.dumps(payout),
    )
    assert "digested: folded into the address's digest message" in text
    assert "1 to send, 1 scheduled, 3 skipped" in text


def test_render_and_diff_give_digest_templates_their_events(tmp_path: Path) -> None:
    code, out = run("render", str(PACING), "digest", "--channel", "email")
    assert code == 0, out
    assert "Subject: 1 payout update" in out and "Payout Failed po_1" in out
    before, after = tmp_path / "before", tmp_path / "after"
    shutil.copytree(PACING, before)
    shutil.copytree(PACING, after)
    digest = after / "templates" / "digest.email.j2"
    digest.write_text(digest.read_text("utf-8").replace("payout update", "payout change"))
    code, out = run("diff", str(before), str(after))
    assert code == 0, out
    assert "-Subject: 1 payout update" in out and "+Subject: 1 payout change" in out


REPLACED = """\
name: a run replaced while it waits out its digest does not swallow the next one
start: 2026-03-02T10:00:00Z
steps:
  - event:
      type: dispute.opened
      id: evt_1
      data: {dispute_id: dp_1, amount: 100, currency: EUR}
      contact: {id: cus_1}
  - advance: 1m
  - event:
      type: dispute.opened
      id: evt_2
      data: {dispute_id: dp_2, amount: 200, currency: EUR}
      contact: {id: cus_1}
  - advance: 30m
  - expect:
      - {event_id: evt_1, recipient: support, channel: in_app}
      - {event_id: evt_2, recipient: support, channel: in_app}
      - event_id: evt_2
        recipient: owner
        channel: email
        template: disputes_digest
        at: "2026-03-02T10:11:00Z"
  - expect_skipped:
      - {event_id: evt_1, recipient: owner, channel: email, reason: replaced}
"""


def test_a_flow_run_replaced_during_its_digest_window_closes_the_digest(tmp_path: Path) -> None:
    copy = tmp_path / "pacing"
    shutil.copytree(PACING, copy)
    config = copy / "clarion.yaml"
    text = config.read_text("utf-8").replace(
        "    on: dispute.opened\n", '    on: dispute.opened\n    key: "{{ contact.id }}"\n'
    )
    config.write_text(text, "utf-8")
    for old in (copy / "tests").iterdir():
        old.unlink()
    (copy / "tests" / "replaced.yaml").write_text(REPLACED, "utf-8")
    code, out = run("test", str(copy))
    assert code == 0, out
