"""Time zones, locales, phone regions and the catch-up window must be ones Clarion can use."""

from __future__ import annotations

from collections.abc import Iterator

from clarion.check.context import CheckContext
from clarion.check.timing import DURATION_HINT, parse_duration, zone
from clarion.diagnostics import Diagnostic, did_you_mean
from clarion.load import YamlPath


def check(ctx: CheckContext) -> Iterator[Diagnostic]:
    defaults = ctx.config.defaults
    yield from timezone(ctx, defaults.timezone, ("defaults", "timezone"))
    yield from locale(ctx, defaults.locale, ("defaults", "locale"))
    if defaults.phone_region is not None:
        yield from region(ctx, defaults.phone_region, ("defaults", "phone_region"))
    if parse_duration(defaults.catch_up) is None:
        yield ctx.error(
            "CL501",
            f"catch_up {defaults.catch_up!r} is not a duration",
            ("defaults", "catch_up"),
            hint=DURATION_HINT,
        )
    for name, recipient in ctx.config.recipients.items():
        if recipient.timezone is not None:
            yield from timezone(ctx, recipient.timezone, ("recipients", name, "timezone"))
        if recipient.locale is not None:
            yield from locale(ctx, recipient.locale, ("recipients", name, "locale"))


def timezone(ctx: CheckContext, name: str, path: YamlPath) -> Iterator[Diagnostic]:
    if zone(name) is None:
        from zoneinfo import available_timezones

        yield ctx.error(
            "CL503",
            f"unknown time zone {name!r}",
            path,
            hint=did_you_mean(name, available_timezones())
            or "use an IANA name such as Europe/Madrid or Asia/Jakarta",
        )


def locale(ctx: CheckContext, name: str, path: YamlPath) -> Iterator[Diagnostic]:
    if not known_locale(name):
        yield ctx.error(
            "CL504",
            f"unknown locale {name!r}",
            path,
            hint="use a language code such as en, es, id, pl or sv (optionally en_GB)",
        )


def known_locale(name: str) -> bool:
    from babel import Locale, UnknownLocaleError

    try:
        Locale.parse(name)
    except (UnknownLocaleError, ValueError, TypeError):
        return False
    return True


def region(ctx: CheckContext, code: str, path: YamlPath) -> Iterator[Diagnostic]:
    import phonenumbers

    regions = phonenumbers.SUPPORTED_REGIONS
    if code not in regions:
        yield ctx.error(
            "CL505",
            f"unknown phone region {code!r}",
            path,
            hint=did_you_mean(code.upper(), regions) or "use an ISO 3166 code such as ES or ID",
        )
