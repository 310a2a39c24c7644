"""`clarion render`: one message as its reader gets it, and previews of every message for a PR."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli.test_cli import run
from tests.conftest import EXAMPLES

HTML_PLAN_CHANGED = """Subject: Your plan is now {{ data.new_plan }}
<html><body>
<p>Hi {{ contact.name | default("there") }},</p>
<p>Your subscription has moved from <b>{{ data.old_plan }}</b> to <b>{{ data.new_plan }}</b>.</p>
</body></html>
"""


def test_a_team_template_prints_its_subject_and_link_first() -> None:
    code, out, err = run("render", str(EXAMPLES), "payment_failed", "--channel", "in_app")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Subject: Payment failed: ")
    assert lines[1].startswith("Link: https://dashboard.yourcompany.com/payments/pay_")
    assert lines[2] == ""
    assert "could not be charged" in out or "failed" in lines[3]
    assert err.startswith("# payment_failed on in_app in en (")
    assert "team message for payment.failed (example)" in err


def test_a_customer_template_in_spanish() -> None:
    code, out, err = run("render", str(EXAMPLES), "receipt", "--channel", "email", "--locale", "es")
    assert code == 0, err
    assert out.startswith("Subject: Tu recibo de 39,00\xa0€\n\nHola:\n")
    assert "Importe pagado: 39,00\xa0€" in out
    assert "templates/es/receipt.email.j2" in err
    assert "customer message for payment.succeeded (example, sample contact)" in err


def test_the_directory_defaults_to_the_current_one() -> None:
    code, out, _ = run("render", "welcome", "-c", "whatsapp", cwd=EXAMPLES)
    assert code == 0
    assert "welcome to Example Store" in out
    assert not out.startswith("Subject:")  # a WhatsApp message has no subject


def test_an_event_file_with_a_contact(tmp_path: Path) -> None:
    event = {
        "type": "payment.succeeded",
        "id": "evt_1",
        "occurred_at": "2026-03-08T23:30:00Z",
        "data": {
            "payment_id": "pay_42",
            "amount": 120050,
            "currency": "EUR",
            "description": "Gold plan, March 2026",
            "receipt_url": "https://billing.example.com/r/42.pdf",
        },
        "contact": {"id": "cus_7", "name": "Ana", "locale": "es", "timezone": "Europe/Madrid"},
    }
    (tmp_path / "event.json").write_text(json.dumps(event))
    code, out, err = run(
        "render", str(EXAMPLES), "receipt", "-c", "email", "--event", str(tmp_path / "event.json")
    )
    assert code == 0, err
    assert out.startswith("Subject: Tu recibo de 1.200,50\xa0€\n")  # the contact's locale
    assert "Hola, Ana:" in out
    assert "Referencia del pago: pay_42" in out
    assert "Fecha: 9 mar 2026" in out  # 23:30 UTC is the next day in Madrid
    assert "(event file)" in err


def test_an_unknown_template_is_exit_1_with_a_suggestion() -> None:
    code, out, err = run("render", str(EXAMPLES), "recipt", "--channel", "email")
    assert code == 1
    assert out == ""
    assert "error: unknown template 'recipt'" in err
    assert "did you mean 'receipt'?" in err
    assert "Traceback" not in err


def test_an_unknown_channel_and_a_missing_channel_variant_are_exit_1() -> None:
    code, _, err = run("render", str(EXAMPLES), "receipt", "--channel", "emial")
    assert code == 1
    assert "did you mean 'email'?" in err
    code, _, err = run("render", str(EXAMPLES), "receipt", "--channel", "sms")
    assert code == 1
    assert "template receipt.sms does not exist (it exists for email)" in err


def test_a_template_that_fails_to_render_is_exit_1(examples_copy: Path) -> None:
    (examples_copy / "templates" / "welcome.whatsapp.j2").write_text("Hi {{ data.nope }}\n")
    code, out, err = run("render", str(examples_copy), "welcome", "-c", "whatsapp")
    assert code == 1
    assert out == ""
    assert "welcome.whatsapp.j2: template welcome.whatsapp fails for event 'contact.created'" in err
    assert "'nope'" in err
    assert "Traceback" not in err


def test_usage_errors_are_exit_2() -> None:
    assert run("render", str(EXAMPLES), "receipt")[0] == 2  # no --channel
    assert run("render", str(EXAMPLES), "--all")[0] == 2  # no -o
    assert run("render", str(EXAMPLES), "receipt", "-c", "email", "-l", "xx_NOPE")[0] == 2


def test_all_writes_every_template_locale_and_channel(tmp_path: Path, examples_copy: Path) -> None:
    (examples_copy / "templates" / "plan_changed.email.j2").write_text(HTML_PLAN_CHANGED)
    out_dir = tmp_path / "previews"
    code, _, err = run("render", str(examples_copy), "--all", "-o", str(out_dir))
    assert code == 0, err
    written = sorted(p.name for p in out_dir.iterdir())
    assert "plan_changed.email.en.html" in written  # the HTML body stays HTML
    assert "plan_changed.email.es.txt" in written  # the Spanish one is plain text
    assert "receipt.email.en.txt" in written and "receipt.email.es.txt" in written
    assert "payment_failed.in_app.en.txt" in written
    assert "index.html" in written
    html = (out_dir / "plan_changed.email.en.html").read_text()
    assert html.startswith("<html><body>") and "Subject:" not in html
    text = (out_dir / "receipt.email.es.txt").read_text()
    assert text.startswith("Subject: Tu recibo de 39,00\xa0€")
    index = (out_dir / "index.html").read_text()
    for name in written:
        if name != "index.html":
            assert f'href="{name}"' in index
    assert f"wrote {len(written) - 1} previews" in err


def test_all_reports_a_failing_template_and_still_writes_the_rest(
    tmp_path: Path, examples_copy: Path
) -> None:
    (examples_copy / "templates" / "welcome.whatsapp.j2").write_text("Hi {{ data.nope }}\n")
    code, _, err = run("render", str(examples_copy), "--all", "-o", str(tmp_path / "p"))
    assert code == 1
    assert "error: welcome.whatsapp (en):" in err
    assert (tmp_path / "p" / "receipt.email.en.txt").exists()
    assert "fails:" in (tmp_path / "p" / "index.html").read_text()


def test_render_never_imports_the_runtime() -> None:
    code = (
        "import sys\n"
        "from clarion.cli import main\n"
        "try:\n    main(['render', sys.argv[1], 'receipt', '-c', 'email'])\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('apprise', 'fastapi', 'uvicorn', 'starlette', 'clarion.runtime')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(EXAMPLES)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
