"""The sidecar's web pages in a real browser: headless Debian Chromium driven by Playwright,
against a real `clarion serve --dry-run` process. Never downloads a browser."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser import CHROMIUM, Watched
from tests.conftest import EXAMPLES
from tests.runtime.serving import Sidecar

if not CHROMIUM.exists():
    pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM}", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need playwright (pip install 'clarion[test]')"
)
expect = sync_api.expect

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def on_loopback(url: str) -> bool:
    return urlsplit(url).scheme == "data" or urlsplit(url).hostname in LOOPBACK


def dispute(dispute_id: str, event_id: str) -> dict[str, Any]:
    return {
        "type": "dispute.created",
        "id": event_id,
        "data": {
            "dispute_id": dispute_id,
            "payment_id": "pay_7HsK2mWq",
            "amount": 4999,
            "currency": "EUR",
            "reason": "product_not_received",
            "respond_by": "2026-12-04",
        },
    }


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    folder = tmp_path_factory.mktemp("pages")
    with Sidecar(EXAMPLES, folder / "store.db", "--dry-run", "--no-watch") as running:
        yield running


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    opened = Watched(browser, allowed=on_loopback, viewport={"width": 1100, "height": 800})
    yield opened
    opened.close()


def test_inbox_shows_new_items_live_and_marks_them_read(
    sidecar: Sidecar, watched: Watched, tmp_path: Path
) -> None:
    page = watched.page
    page.goto(f"{sidecar.url}/inbox/owner")
    expect(page.locator("h1")).to_have_text("owner")
    expect(page.locator("#live")).to_have_text("Live")
    expect(page.locator("#unread-text")).to_have_text("No unread notifications")
    expect(page.locator("#unread-badge")).to_be_hidden()
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    status, body = sidecar.post("/v1/events", dispute("dp_LIVE1", "evt_page_live1"))
    assert status == 202, body
    item = page.locator("#items li").filter(has_text="Dispute dp_LIVE1")
    expect(item).to_be_visible(timeout=10_000)
    expect(item).to_contain_text("disputed on payment pay_7HsK2mWq")
    expect(item.locator("time")).to_have_text("just now")
    expect(item.locator("a.event-link")).to_have_attribute("href", "/events/evt_page_live1")
    expect(page.locator("#unread-badge")).to_have_text("1")
    expect(page.locator("#unread-text")).to_have_text("1 unread notification")
    expect(page.locator("#announcer")).to_contain_text("New notification: Dispute dp_LIVE1")
    page.screenshot(path=tmp_path / "inbox-new-item.png", full_page=True)

    sidecar.post("/v1/events", dispute("dp_LIVE2", "evt_page_live2"))
    expect(page.locator("#unread-badge")).to_have_text("2", timeout=10_000)
    expect(page.locator("#items li").first).to_contain_text("Dispute dp_LIVE2")  # newest first

    # Mark one read with the keyboard: the button is a real button.
    button = item.get_by_role("button", name="Mark read: Dispute dp_LIVE1")
    button.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#unread-badge")).to_have_text("1")
    expect(item).to_contain_text("Read")
    expect(item).not_to_have_class(re.compile(r"\bitem-unread\b"))
    assert sidecar.get("/v1/inbox/owner?unread=true")[1]["unread"] == 1

    page.get_by_role("button", name="Mark all read").click()
    expect(page.locator("#unread-badge")).to_be_hidden()
    expect(page.locator("#unread-text")).to_have_text("No unread notifications")
    expect(page.get_by_role("button", name="Mark all read")).to_be_disabled()
    assert sidecar.get("/v1/inbox/owner")[1]["unread"] == 0
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=tmp_path / "inbox-read.png", full_page=True)
    watched.check()


def test_inbox_text_is_escaped(sidecar: Sidecar, watched: Watched, tmp_path: Path) -> None:
    page = watched.page
    page.goto(f"{sidecar.url}/inbox/owner")
    expect(page.locator("#live")).to_have_text("Live")
    hostile = "<img src=x onerror=window.__xss=1>"
    assert sidecar.post("/v1/events", dispute(hostile, "evt_page_xss"))[0] == 202
    item = page.locator("#items li").filter(has_text=hostile)
    expect(item).to_be_visible(timeout=10_000)
    assert item.locator("img").count() == 0
    assert page.evaluate("window.__xss") is None
    watched.check()


def test_event_page_explains_why_not_sent(
    sidecar: Sidecar, watched: Watched, tmp_path: Path
) -> None:
    assert sidecar.post("/v1/events", dispute("dp_WHY", "evt_page_why"))[0] == 202
    deadline = time.monotonic() + 10
    while any(d["status"] == "planned" for d in sidecar.event("evt_page_why")["deliveries"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    page = watched.page
    page.goto(f"{sidecar.url}/events/evt_page_why")
    expect(page.locator("h1")).to_have_text("dispute.created")
    skipped = page.locator("#skipped > li")
    stored = sidecar.event("evt_page_why")["deliveries"]
    expect(skipped).to_have_count(sum(d["status"] == "skipped" for d in stored))
    tablet = skipped.filter(has_text="owner-tablet")
    expect(tablet).to_contain_text("Why not sent")
    expect(tablet).to_contain_text("The push device is switched off")
    expect(tablet.locator(".why-code code")).to_have_text("device_disabled")
    expect(skipped.filter(has_text="marketing").first).to_contain_text(
        "set not to receive this event"
    )
    expect(page.locator("#others > li").filter(has_text="owner")).not_to_have_count(0)
    page.screenshot(path=tmp_path / "event.png", full_page=True)

    page.goto(f"{sidecar.url}/events/evt_never_sent")
    expect(page.get_by_role("alert")).to_contain_text("It was never accepted")
    # a 404 from the API is an expected answer, shown on the page: Chromium logs it anyway
    watched.errors = [e for e in watched.errors if "404" not in e]
    watched.check()


def test_index_links_inboxes_and_looks_up_events(
    sidecar: Sidecar, watched: Watched, tmp_path: Path
) -> None:
    assert sidecar.post("/v1/events", dispute("dp_IDX", "evt_page_index"))[0] == 202
    page = watched.page
    page.goto(f"{sidecar.url}/")
    links = page.locator("#inboxes a")
    expect(links).to_have_count(3)
    names = [text.split()[0] for text in links.all_inner_texts()]
    assert names == ["marketing", "owner", "support"]
    page.screenshot(path=tmp_path / "index.png", full_page=True)

    page.get_by_label("Event id").fill("evt_page_index")
    page.get_by_label("Event id").press("Enter")
    expect(page).to_have_url(f"{sidecar.url}/events/evt_page_index")
    expect(page.locator("h1")).to_have_text("dispute.created")

    page.goto(f"{sidecar.url}/")
    page.get_by_role("link", name="support").click()
    expect(page).to_have_url(f"{sidecar.url}/inbox/support")
    expect(page.locator("#live")).to_have_text("Live")
    watched.check()


def test_pages_fit_a_phone(sidecar: Sidecar, browser: Any, tmp_path: Path) -> None:
    assert sidecar.post("/v1/events", dispute("dp_PHONE", "evt_page_phone"))[0] == 202
    phone = Watched(
        browser, allowed=on_loopback, viewport={"width": 375, "height": 740}, device_scale_factor=2
    )
    ready = {
        "/inbox/owner": "#items li",
        "/events/evt_page_phone": "#skipped li",
        "/": "#inboxes a",
    }
    try:
        for path, shown in ready.items():
            phone.page.goto(sidecar.url + path)
            expect(phone.page.locator(shown).first).to_be_visible(timeout=10_000)
            wide = phone.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert wide <= 0, f"{path} scrolls sideways on a phone"
            name = path.strip("/").replace("/", "-") or "index"
            phone.page.screenshot(path=tmp_path / f"phone-{name}.png", full_page=True)
        phone.check()
    finally:
        phone.close()


def test_unknown_inbox_says_so(sidecar: Sidecar, watched: Watched) -> None:
    watched.page.goto(f"{sidecar.url}/inbox/nobody")
    expect(watched.page.get_by_role("alert")).to_contain_text("no in-app inbox for “nobody”")
    watched.errors = [e for e in watched.errors if "404" not in e]
    watched.check()
