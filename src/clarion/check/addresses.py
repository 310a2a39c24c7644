"""Normalising addresses: email with email-validator (no DNS), phones to E.164 (phonenumbers)."""

from __future__ import annotations

import functools
import re


class AddressError(ValueError):
    """The address cannot be normalised; the message says why, naming the value."""


_DIGITS = re.compile(r"[\s().-]")


@functools.lru_cache(maxsize=8192)
def normalize_email(text: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        return str(validate_email(text, check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        raise AddressError(f"{text!r} is not a valid email address: {exc}") from None


@functools.lru_cache(maxsize=8192)
def normalize_phone(text: str, region: str | None) -> str:
    """E.164 for `text`. Numbers without + are read in `region`, else as international (seed 002:
    WhatsApp numbers are written `6282114000032`, without + or leading zero)."""
    import phonenumbers

    raw = _DIGITS.sub("", text.strip())
    candidates: list[tuple[str, str | None]] = []
    if raw.startswith("+"):
        candidates.append((raw, None))
    elif raw.startswith("00"):
        candidates.append(("+" + raw[2:], None))
    else:
        if region:
            candidates.append((raw, region))
        candidates.append(("+" + raw, None))
    for number, where in candidates:
        try:
            parsed = phonenumbers.parse(number, where)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    tried = f"in region {region} or " if region and not raw.startswith(("+", "00")) else ""
    raise AddressError(f"{text!r} is not a valid phone number {tried}as an international number")


def mask(address: str) -> str:
    """`a***@example.com`, `+62821*****32`: enough to recognise, not enough to use."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    if len(address) > 8:
        return address[:6] + "*" * (len(address) - 8) + address[-2:]
    return address[:2] + "*" * max(len(address) - 2, 0)
