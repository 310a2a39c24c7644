"""`clarion docs`: a static HTML site of the config (catalogue, who gets what, customer messages,
flows), checked as files and in a real browser (headless Debian Chromium through Playwright)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser import Watched
from tests.cli.test_cli import BROKEN, run, write
from tests.conftest import EXAMPLES

WARNINGS = ("error", "warning")  # a console warning fails these pages too

FILES = [
    "index.html",
    "events.html",
    "customers.html",
    "flows.html",
    "clarion-docs.css",
    "clarion-docs.js",
]
EVENT_COUNT = 28


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "site"
    code, _, err = run("docs", str(EXAMPLES), "-o", str(out))
    assert code == 0, err
    assert "wrote" in err
    return out


def read(site: Path, name: str) -> str:
    return (site / name).read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# The files
# ---------------------------------------------------------------------------------------------


def test_writes_the_pages_and_their_assets(site: Path) -> None:
    assert sorted(p.name for p in site.iterdir()) == sorted(FILES)
    for page in FILES[:4]:
        text = read(site, page)
        assert text.startswith("<!doctype html>")
        assert '<link rel="stylesheet" href="clarion-docs.css">' in text
        assert '<script src="clarion-docs.js" defer></script>' in text
        assert "<script>" not in text  # no inline script: the CSP allows only the file
        assert "sha256:" in text  # the table's digest in the footer


def test_the_catalogue_describes_every_event(site: Path) -> None:
    events = read(site, "events.html")
    assert events.count('class="event-doc card"') == EVENT_COUNT
    failed = events[events.index('id="event-payment.failed"') :]
    failed = failed[: failed.index("</article>")]
    assert "A payment attempt failed." in failed
    assert '<span class="badge critical">critical</span>' in failed
    assert "<dt>Category</dt><dd>payments</dd>" in failed
    assert "<code>payment_failed</code>" in failed  # the team template
    # The payload schema, readably: field, type, required or not, notes.
    assert re.search(
        r"<code>amount</code></th><td>integer</td><td><span class=\"req\">required</span></td>"
        r"<td>amount in minor units; ≥ 0</td>",
        failed,
    )
    assert re.search(
        r"<code>customer_email</code></th><td>string</td><td>optional</td><td>format email</td>",
        failed,
    )
    assert "one of card, bank_transfer, direct_debit, wallet" in events  # payment.received
    # The example as JSON.
    assert "&#34;payment_id&#34;: &#34;pay_3QeR8LkT&#34;," in failed
    assert "&#34;amount&#34;: 125000," in failed
    # Who gets it, routes included.
    assert "owner · email (owner@yourcompany.com)" in failed
    assert (
        "finance · email (finance@yourcompany.com), by route big-failed-payments when "
        "data.amount &gt;= 100000" in failed
    )
    assert "owner-tablet" not in failed  # a disabled device gets nothing
    renewal = events[events.index('id="event-subscription.renewal_scheduled"') :]
    assert "starts payment_reminder" in renewal[: renewal.index("</article>")]


def test_customer_messages_show_their_state_and_channels(site: Path) -> None:
    page = read(site, "customers.html")
    license_row = re.search(
        r'<tr class="is-disabled" data-event="license_key.created">.*?</tr>', page, re.S
    )
    assert license_row is not None
    assert '<span class="badge off">off</span>' in license_row.group(0)
    assert "<td>email</td>" in license_row.group(0)
    receipt = re.search(r'<tr class="is-on" data-event="payment.succeeded">.*?</tr>', page, re.S)
    assert receipt is not None
    assert "<code>receipt</code>" in receipt.group(0)
    assert "<code>{{ data.receipt_url }}</code>" in receipt.group(0)
    assert page.count('class="is-on"') == 7
    assert "viber: no" in page and "email: yes" in page  # consent defaults
    assert "payment_reminder" in page  # flows' messages to the contact


def test_flows_are_timelines(site: Path) -> None:
    page = read(site, "flows.html")
    assert (
        "on subscription.renewal_scheduled → wait until data.due_date \u22122d at 09:00 "
        "(skip if late) → send email, sms, push: payment_reminder" in page
    )
    assert (
        "on order.created → wait until data.estimated_delivery at 10:00 → send whatsapp: "
        "delivery_followup → emit order.followup_delivered" in page
    )
    reminder = page[page.index('id="flow-payment_reminder"') :]
    reminder = reminder[: reminder.index("</article>")]
    assert "unless <code>data.paused_through is defined and data.paused_through &gt;= " in reminder
    assert "<code>{{ data.subscription_id }}</code>" in reminder  # key
    assert 'href="events.html#event-payment.succeeded"' in reminder  # cancel_on
    assert reminder.count('<li class="step') == 3
    assert "09:00 in the contact&#39;s time zone, else Europe/Madrid" in reminder
    unpaid = page[page.index('id="flow-unpaid_reminder"') :]
    assert "when <code>not data.first_purchase</code>" in unpaid


def test_secrets_never_reach_the_pages(site: Path) -> None:
    for name in FILES:
        text = read(site, name)
        assert "secret:" not in text, name
        assert "ntfy://" not in text and "ntfy.example.com" not in text, name  # device URLs
        for scheme in ("mailtos://", "twilio://", "whatsapp://", "viber://"):
            assert scheme not in text, name  # channels' Apprise URLs
        for placeholder in ("SMTP_PASSWORD", "TWILIO_TOKEN", "OWNER_PHONE_NTFY_TOPIC"):
            assert placeholder not in text, name
    assert "owner-phone" in read(site, "index.html")  # the device by its name


def test_a_table_file_gives_the_same_site(site: Path, tmp_path: Path) -> None:
    table = tmp_path / "table.json"
    assert run("compile", str(EXAMPLES), "-o", str(table))[0] == 0
    code, _, err = run("docs", str(table), "-o", str(tmp_path / "from-table"))
    assert code == 0, err
    for name in FILES:
        assert (tmp_path / "from-table" / name).read_bytes() == (site / name).read_bytes(), name


def test_text_from_the_config_is_escaped(examples_copy: Path, tmp_path: Path) -> None:
    orders = examples_copy / "catalog" / "orders.yaml"
    hostile = '<img src=x onerror=alert(1)> & "quoted"'
    text = orders.read_text().replace(
        "description: A customer contact was created and saved in the CRM.",
        f"description: '{hostile}'",
    )
    orders.write_text(text)
    code, _, err = run("docs", str(examples_copy), "-o", str(tmp_path / "out"))
    assert code == 0, err
    events = (tmp_path / "out" / "events.html").read_text()
    assert "<img src=x" not in events
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &#34;quoted&#34;" in events


def test_a_broken_config_is_exit_1_and_writes_nothing(tmp_path: Path) -> None:
    config = write(tmp_path / "config", BROKEN)
    code, out, err = run("docs", str(config), "-o", str(tmp_path / "out"))
    assert code == 1
    assert "error[" in err and "nothing written" in err
    assert "hunter2-LEAK" not in out + err
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_table_is_exit_1(tmp_path: Path) -> None:
    bogus = tmp_path / "table.json"
    bogus.write_text('{"format": "something else"}')
    code, _, err = run("docs", str(bogus), "-o", str(tmp_path / "out"))
    assert code == 1
    assert "not a config directory or a Clarion routing table" in err


def test_usage_errors_are_exit_2(tmp_path: Path) -> None:
    assert run("docs", str(EXAMPLES))[0] == 2  # no -o
    code, _, err = run("docs", str(tmp_path / "missing"), "-o", str(tmp_path / "out"))
    assert code == 2
    assert "no such file or directory" in err
    (tmp_path / "file").write_text("")
    assert run("docs", str(EXAMPLES), "-o", str(tmp_path / "file"))[0] == 2  # not a folder


def test_docs_never_imports_the_runtime(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from clarion.cli import main\n"
        "try:\n    main(['docs', sys.argv[1], '-o', sys.argv[2]])\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('apprise', 'fastapi', 'uvicorn', 'starlette', 'clarion.runtime')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(EXAMPLES), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out" / "index.html").exists()


# ---------------------------------------------------------------------------------------------
# In a browser
# ---------------------------------------------------------------------------------------------


def local_file(url: str) -> bool:
    return urlsplit(url).scheme == "file"


@pytest.fixture
def desktop(browser: Any) -> Iterator[Watched]:
    opened = Watched(
        browser, allowed=local_file, console=WARNINGS, viewport={"width": 1280, "height": 900}
    )
    yield opened
    opened.close()


def cell(page: Any, event: str, target: str) -> Any:
    return page.locator(f'tr[data-event="{event}"] td[data-col="{target}"]')


def visible_events(page: Any) -> list[str]:
    return list(
        page.eval_on_selector_all(
            "tr.event", "rows => rows.filter(r => r.offsetParent).map(r => r.dataset.event)"
        )
    )


def test_every_page_loads_without_errors_or_network(
    site: Path, desktop: Watched, tmp_path: Path
) -> None:
    for name in FILES[:4]:
        desktop.page.goto((site / name).as_uri())
        assert desktop.page.locator("h1").count() == 1
        assert desktop.page.evaluate("getComputedStyle(document.body).margin") == "0px"  # CSS
        desktop.page.screenshot(path=tmp_path / f"{name}.png", full_page=True)
    desktop.check()


def test_the_matrix_shows_who_gets_what(site: Path, desktop: Watched, tmp_path: Path) -> None:
    page = desktop.page
    page.goto((site / "index.html").as_uri())
    assert len(visible_events(page)) == EVENT_COUNT
    # Enable All.
    assert cell(page, "payment.failed", "owner/email").get_attribute("data-state") == "on"
    assert cell(page, "payout.in_progress", "owner/in_app").get_attribute("data-state") == "on"
    # Categories and single events.
    assert cell(page, "payout.failed", "finance/email/0").get_attribute("data-state") == "on"
    assert cell(page, "refund.failed", "finance/email/1").get_attribute("data-state") == "on"
    assert cell(page, "payout.initiated", "finance/email/1").get_attribute("data-state") == "none"
    assert (
        cell(page, "payment.failed", "owner/push/owner-phone").get_attribute("data-state") == "on"
    )
    assert cell(page, "payment.failed", "sales/email").get_attribute("data-state") == "on"
    # Not wanted, but a conditional route reaches it.
    finance = cell(page, "payment.failed", "finance/email/0")
    assert finance.get_attribute("data-state") == "maybe"
    assert (
        finance.inner_text()
        .strip()
        .endswith("by route big-failed-payments when data.amount >= 100000")
    )
    assert (
        cell(page, "payment.failed", "finance/push/finance-phone").get_attribute("data-state")
        == "maybe"
    )
    assert cell(page, "payment.received", "finance/email/0").get_attribute("data-state") == "none"
    # The disabled device.
    tablet = page.locator('th.target[data-col="owner/push/owner-tablet"]')
    assert "disabled" in tablet.inner_text()
    assert "ntfy" not in (tablet.get_attribute("title") or "")
    assert (
        cell(page, "payment.failed", "owner/push/owner-tablet").get_attribute("data-state")
        == "disabled"
    )
    # Disable All: no marks at all.
    marketing = page.locator('td[data-col="marketing/email"]')
    assert marketing.count() == EVENT_COUNT
    assert set(marketing.evaluate_all("cells => cells.map(c => c.dataset.state)")) == {"none"}
    assert page.locator('td[data-col="marketing/email"] .mark').count() == 0
    page.screenshot(path=tmp_path / "matrix.png", full_page=True)
    desktop.check()


def test_the_filter_narrows_rows_and_columns(site: Path, desktop: Watched) -> None:
    page = desktop.page
    page.goto((site / "index.html").as_uri())
    box = page.get_by_label("Filter by event, category or recipient")
    assert box.is_visible()
    box.fill("payout")
    assert visible_events(page) == [
        "payout.failed",
        "payout.in_progress",
        "payout.initiated",
        "payout.on_hold",
        "payout.processed",
    ]
    assert page.locator("#filter-status").inner_text() == f"5 of {EVENT_COUNT} events"
    assert not page.locator('tbody[data-category="disputes"]').is_visible()
    box.fill("DISPUTES")  # a category, any case
    assert visible_events(page) == [
        "dispute.challenged",
        "dispute.created",
        "dispute.lost",
        "dispute.won",
    ]
    # A recipient: its columns only, and the events it gets.
    box.fill("club_admin")
    assert visible_events(page) == [
        "subscription.cancellation_requested",
        "subscription.expired",
        "subscription.new_subscriber",
    ]
    assert page.locator('th.target[data-col="club_admin/email"]').is_visible()
    assert not page.locator('th.target[data-col="owner/email"]').is_visible()
    assert not page.locator('th.recipient[data-recipient="owner"]').is_visible()
    box.fill("finance-phone")  # a device
    assert visible_events(page) == ["payment.failed", "payout.failed", "payout.on_hold"]
    assert page.locator('th.recipient[data-recipient="finance"]').get_attribute("colspan") == "1"
    box.fill("nothing-like-this")
    assert visible_events(page) == []
    assert page.locator("#filter-empty").is_visible()
    box.fill("")
    assert len(visible_events(page)) == EVENT_COUNT
    assert page.locator('th.recipient[data-recipient="finance"]').get_attribute("colspan") == "3"
    desktop.check()


def test_the_matrix_works_without_javascript(site: Path, browser: Any) -> None:
    watched = Watched(
        browser,
        allowed=local_file,
        console=WARNINGS,
        java_script_enabled=False,
        viewport={"width": 1280, "height": 900},
    )
    try:
        page = watched.page
        page.goto((site / "index.html").as_uri())
        assert not page.locator("#filter-form").is_visible()  # no box that would do nothing
        assert len(visible_events(page)) == EVENT_COUNT
        assert cell(page, "payment.failed", "owner/email").is_visible()
        assert watched.errors == []
    finally:
        watched.close()


def test_the_matrix_on_a_phone(site: Path, browser: Any, tmp_path: Path) -> None:
    watched = Watched(
        browser,
        allowed=local_file,
        console=WARNINGS,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    try:
        page = watched.page
        page.goto((site / "index.html").as_uri())
        # The page itself never scrolls sideways; the matrix scrolls in its own box.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        scroller = page.locator("#matrix .scroll")
        assert page.evaluate(
            "() => { const s = document.querySelector('#matrix .scroll');"
            " return s.scrollWidth > s.clientWidth; }"
        )
        first = page.locator('tr[data-event="payment.failed"] th')
        before = first.bounding_box()
        scroller.evaluate("s => { s.scrollLeft = 400; }")
        after = first.bounding_box()
        assert before is not None and after is not None
        assert abs(after["x"] - before["x"]) < 1  # the event column stays put
        page.screenshot(path=tmp_path / "matrix-phone.png", full_page=True)
        watched.check()
    finally:
        watched.close()
