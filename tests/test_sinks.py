"""The loopback sinks themselves, driven by real Apprise (no mocks)."""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import apprise
import pytest

from tests.sinks import HttpSink, SinkTimeout, SmtpSink, http_sink, smtp_sink

__all__ = ["http_sink", "smtp_sink"]  # fixtures, imported for pytest to find


def notifier(url: str) -> apprise.NotifyBase:
    obj = apprise.Apprise.instantiate(url)
    assert obj is not None, f"Apprise refused {url!r}"
    obj.request_rate_per_sec = 0  # no throttling between sends
    return obj


def send(
    url: str,
    *,
    title: str = "Invoice due",
    body: str = "Pay 12.50 EUR",
    attach: apprise.AppriseAttachment | None = None,
) -> bool:
    return bool(notifier(url).notify(title=title, body=body, attach=attach))


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    path = tmp_path / "invoice-42.pdf"
    path.write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\nnot really a pdf\n")
    return path


def post(url: str, data: bytes, timeout: float = 2.0) -> int:
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


# -- HttpSink ---------------------------------------------------------------


def test_json_title_message_and_attachment(http_sink: HttpSink, pdf: Path) -> None:
    url = http_sink.apprise_url("/hook")
    assert url == f"json://127.0.0.1:{http_sink.port}/hook"

    assert send(url, attach=apprise.AppriseAttachment(str(pdf)))

    (got,) = http_sink.wait_for(1, timeout=2)
    assert (got.method, got.path, got.status, got.outcome) == ("POST", "/hook", 200, "ok")
    assert got.headers["content-type"] == "application/json"
    assert got.json["title"] == "Invoice due"
    assert got.json["message"] == "Pay 12.50 EUR"
    assert got.json["type"] == "info"
    assert "version" in got.json
    assert (got.title, got.message) == ("Invoice due", "Pay 12.50 EUR")
    assert json.loads(got.body) == got.json
    (att,) = got.attachments
    assert att.filename == "invoice-42.pdf"
    assert att.content_type == "application/pdf"
    assert att.data == pdf.read_bytes()
    assert base64.b64decode(got.json["attachments"][0]["base64"]) == pdf.read_bytes()


def test_form_fields_urlencoded_and_multipart(http_sink: HttpSink, pdf: Path) -> None:
    url = http_sink.apprise_url("/form", scheme="form")
    assert url.startswith("form://127.0.0.1:")

    assert send(url, title="Plain", body="no file")
    assert send(
        url, title="With file", body="see attached", attach=apprise.AppriseAttachment(str(pdf))
    )

    plain, multipart = http_sink.wait_for(2, timeout=2)
    assert plain.json is None
    assert plain.form is not None and plain.form["title"] == "Plain"
    assert plain.message == "no file"
    assert plain.attachments == ()
    assert multipart.headers["content-type"].startswith("multipart/form-data")
    assert multipart.form is not None and multipart.form["message"] == "see attached"
    (att,) = multipart.attachments
    assert (att.filename, att.data) == ("invoice-42.pdf", pdf.read_bytes())


def test_query_string_and_count_by(http_sink: HttpSink) -> None:
    assert send(http_sink.apprise_url("/a"))
    assert send(http_sink.apprise_url("/a"), title="other")
    assert send(http_sink.apprise_url("/b", method="PUT"))
    http_sink.wait_for(3, timeout=2)
    assert http_sink.count_by("path") == {"/a": 2, "/b": 1}
    assert http_sink.count_by("method") == {"POST": 2, "PUT": 1}
    assert http_sink.count_by(lambda r: (r.path, r.title)) == {
        ("/a", "Invoice due"): 1,
        ("/a", "other"): 1,
        ("/b", "Invoice due"): 1,
    }
    http_sink.clear()
    assert len(http_sink) == 0


def test_fail_first_fails_each_distinct_request_once(http_sink: HttpSink) -> None:
    http_sink.fail_first = 1
    url = http_sink.apprise_url("/hook")

    assert not send(url, body="one")  # 500
    assert send(url, body="one")  # same request again: 200
    assert not send(url, body="two")  # a different body is a new identity
    assert send(url, body="two")

    got = http_sink.wait_for(4, timeout=2)
    assert [r.status for r in got] == [500, 200, 500, 200]
    assert http_sink.count_by("outcome") == {"fail": 2, "ok": 2}


def test_fail_first_by_path(pdf: Path) -> None:
    with HttpSink(fail_first=2, fail_first_by="path") as sink:
        url = sink.apprise_url("/hook")
        results = [send(url, body=f"n{i}") for i in range(3)]
        assert results == [False, False, True]
        assert send(sink.apprise_url("/other"), body="n0") is False


def test_status_override(http_sink: HttpSink) -> None:
    http_sink.status = 204
    assert send(http_sink.apprise_url())
    http_sink.status = 404
    assert not send(http_sink.apprise_url())
    assert [r.status for r in http_sink.wait_for(2, timeout=2)] == [204, 404]


def test_delay_measurably_delays(http_sink: HttpSink) -> None:
    url = http_sink.apprise_url()
    started = time.monotonic()
    assert send(url)
    fast = time.monotonic() - started

    http_sink.delay = 0.2
    started = time.monotonic()
    assert send(url)
    slow = time.monotonic() - started

    assert slow >= 0.2
    assert slow - fast >= 0.15


def test_hang_makes_the_client_time_out(http_sink: HttpSink) -> None:
    http_sink.hang_rate = 1.0
    http_sink.hang_seconds = 2.0
    started = time.monotonic()
    assert not send(http_sink.apprise_url(rto=0.2))  # Apprise read timeout 0.2 s
    assert time.monotonic() - started < 1.5
    (got,) = http_sink.wait_for(1, timeout=1)
    assert (got.outcome, got.status) == ("hang", None)


def test_fail_rate_is_seeded_and_roughly_right() -> None:
    def outcomes(seed: int) -> list[int]:
        with HttpSink(fail_rate=0.3, seed=seed) as sink:
            return [post(sink.url + "/x", b"{}") for _ in range(40)]

    first = outcomes(7)
    assert first == outcomes(7)
    assert 4 <= first.count(500) <= 20
    assert set(first) == {200, 500}


def test_wait_for_times_out_with_a_clear_message(http_sink: HttpSink) -> None:
    assert send(http_sink.apprise_url("/only"))
    started = time.monotonic()
    with pytest.raises(SinkTimeout, match=r"expected 2 request\(s\) within 0\.2s, got 1") as info:
        http_sink.wait_for(2, timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 1
    assert "/only" in str(info.value)
    assert isinstance(info.value, AssertionError)


def test_many_concurrent_requests(http_sink: HttpSink) -> None:
    http_sink.delay = 0.01
    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(
            pool.map(lambda i: post(f"{http_sink.url}/n{i % 4}", b'{"i": %d}' % i), range(300))
        )
    assert statuses == [200] * 300
    got = http_sink.wait_for(300, timeout=2)
    assert sorted(r.json["i"] for r in got) == list(range(300))
    assert [r.index for r in got] == list(range(300))
    assert http_sink.count_by("path") == {f"/n{i}": 75 for i in range(4)}


def test_stop_releases_hung_requests_and_frees_the_port() -> None:
    sink = HttpSink(hang_rate=1.0, hang_seconds=30)
    with sink:
        port = sink.port
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(post, sink.url + "/h", b"{}", 5.0)
            sink.wait_for(1, timeout=2)
            started = time.monotonic()
            sink.stop()
            assert time.monotonic() - started < 1
            with pytest.raises(http.client.RemoteDisconnected):
                pending.result()  # dropped without an answer, long before 5 s
    with pytest.raises(RuntimeError, match="not running"):
        _ = sink.url
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        post(f"http://127.0.0.1:{port}/h", b"{}", 0.5)


# -- SmtpSink ---------------------------------------------------------------


def test_email_subject_body_and_attachment(smtp_sink: SmtpSink, pdf: Path) -> None:
    template = smtp_sink.apprise_url(sender="billing@example.com")
    assert template.startswith(f"mailto://127.0.0.1:{smtp_sink.port}?")
    assert template.endswith("&to={to}")
    url = template.format(to="ann@example.com")

    assert send(
        url, title="Invoice 42", body="Please pay", attach=apprise.AppriseAttachment(str(pdf))
    )

    (mail,) = smtp_sink.wait_for(1, timeout=2)
    assert mail.accepted
    assert mail.mail_from == "billing@example.com"
    assert mail.rcpt_tos == ("ann@example.com",)
    assert mail.subject == "Invoice 42"
    assert mail.message["To"] == "ann@example.com"
    assert mail.text is not None and "Please pay" in mail.text
    assert mail.html is not None and "Please pay" in mail.html
    (att,) = mail.attachments
    assert att.filename == "invoice-42.pdf"
    assert att.content_type == "application/pdf"
    assert att.data == pdf.read_bytes()


def test_email_text_format_and_several_recipients(smtp_sink: SmtpSink) -> None:
    url = smtp_sink.apprise_url(format="text").format(to="ann@example.com,bob@example.com")
    assert send(url, title="Hi", body="line one\nline two")
    mails = smtp_sink.wait_for(2, timeout=2)  # Apprise sends one message per recipient
    assert sorted(m.rcpt_tos for m in mails) == [("ann@example.com",), ("bob@example.com",)]
    assert all(m.html is None and m.text is not None and "line two" in m.text for m in mails)
    assert smtp_sink.count_by("subject") == {"Hi": 2}


def test_email_fail_first(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_first = 1
    url = smtp_sink.apprise_url().format(to="ann@example.com")
    assert not send(url)
    assert send(url)
    assert [m.accepted for m in smtp_sink.wait_for(2, timeout=2)] == [False, True]


def test_email_wait_for_times_out_with_a_clear_message(smtp_sink: SmtpSink) -> None:
    with pytest.raises(SinkTimeout, match=r"expected 1 message\(s\) within 0\.1s, got 0"):
        smtp_sink.wait_for(1, timeout=0.1)


def test_sinks_get_distinct_free_ports() -> None:
    with HttpSink() as a, HttpSink() as b, SmtpSink() as c, SmtpSink() as d:
        assert len({a.port, b.port, c.port, d.port}) == 4
