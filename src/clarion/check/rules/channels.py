"""Channel URLs: a scheme, `{to}` where an address goes, a sender for email, no literal secrets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

from clarion.check.context import CheckContext
from clarion.check.secrets import NAME, PLACEHOLDER, literal_credentials
from clarion.check.targets import guarded, literal_private_host
from clarion.check.timing import parse_rate
from clarion.diagnostics import Diagnostic
from clarion.load import YamlPath

SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})


def check(ctx: CheckContext) -> Iterator[Diagnostic]:
    for name, channel in ctx.config.channels.items():
        base: YamlPath = ("channels", name)
        urls = (
            channel.apprise
            if isinstance(channel.apprise, list)
            else ([channel.apprise] if channel.apprise is not None else [])
        )
        listed = isinstance(channel.apprise, list)
        if channel.address in ("url", "inbox") and urls:
            yield ctx.error(
                "CL604",
                f"channel {name!r} ({channel.address}) takes no `apprise` URL",
                (*base, "apprise"),
                hint="push devices carry their own URL in `recipients`"
                if channel.address == "url"
                else "the inbox is kept by Clarion itself",
                excerpt=False,
            )
            continue
        if channel.address in ("email", "phone") and not urls:
            yield ctx.error(
                "CL604",
                f"channel {name!r} ({channel.address}) needs an `apprise` URL",
                base,
                hint='e.g. apprise: "twilio://{secret:SID}:{secret:TOKEN}@15551234567/{to}"',
            )
        for index, url in enumerate(urls):
            path: YamlPath = (*base, "apprise", index) if listed else (*base, "apprise")
            yield from url_rules(ctx, url, path, f"channel {name!r}")
            if guarded(url, channel.address):
                yield from _private_target(ctx, url, path, f"channel {name!r}")
            if not SCHEME.match(url):
                continue
            if channel.address in ("email", "phone") and "{to}" not in url:
                yield ctx.error(
                    "CL603",
                    f"channel {name!r}: the Apprise URL has no {{to}} placeholder",
                    path,
                    hint="put {to} where the recipient's address goes, e.g. .../?to={to}",
                    excerpt=False,
                )
            if channel.address == "email":
                yield from _sender(ctx, name, url, path)
        if channel.rate is not None and parse_rate(channel.rate) is None:
            yield ctx.error(
                "CL506",
                f"rate {channel.rate!r} of channel {name!r} is not a rate",
                (*base, "rate"),
                hint="write a count per unit: 20/s, 600/m or 1000/h",
            )
    for item in ctx.entries:
        if item.entry.url is not None:
            owner = f"device {item.entry.device!r}"
            yield from url_rules(ctx, item.entry.url, (*item.path, "url"), owner)
            yield from _private_target(ctx, item.entry.url, (*item.path, "url"), owner)


def url_rules(ctx: CheckContext, url: str, path: YamlPath, owner: str) -> Iterator[Diagnostic]:
    for secret in PLACEHOLDER.findall(url):
        if not NAME.match(secret):
            yield ctx.error(
                "CL605",
                f"{owner}: {{secret:{secret}}} is not a usable environment variable name",
                path,
                hint="secret names are letters, digits and _, not starting with a digit",
                excerpt=False,
            )
    if not SCHEME.match(url):
        yield ctx.error(
            "CL304",
            f"{owner}: the value is not an Apprise URL",
            path,
            hint="write scheme://..., e.g. mailtos://... or twilio://...",
            excerpt=False,
        )
        return
    kinds = literal_credentials(url)
    if kinds:
        location = ctx.at(path)
        if location is not None:
            ctx.redacted.add((location.file, location.line))
        yield ctx.error(
            "CL602",
            f"{owner}: the Apprise URL has a {' and a '.join(kinds)} written in it",
            path,
            hint="write {secret:NAME} in its place and set the environment variable NAME "
            "where Clarion runs; then rotate the credential, it is in your git history",
            excerpt=False,
        )


def _private_target(
    ctx: CheckContext, url: str, path: YamlPath, owner: str
) -> Iterator[Diagnostic]:
    if ctx.config.defaults.allow_private_targets:
        return
    found = literal_private_host(url)
    if found is None:
        return
    host, kind = found
    yield ctx.error(
        "CL306",
        f"{owner}: the URL's host {host!r} is a {kind} address; sends there are refused",
        path,
        hint="point it at a public host, or, if the sidecar is meant to reach its own network, "
        "set defaults.allow_private_targets: true",
        excerpt=False,
    )


def _sender(ctx: CheckContext, name: str, url: str, path: YamlPath) -> Iterator[Diagnostic]:
    marked = PLACEHOLDER.sub("secret", url)
    try:
        parts = urlsplit(marked)
        user = parts.username
    except ValueError:
        return
    if parts.scheme.lower() not in EMAIL_SCHEMES:
        return
    sender = parse_qs(parts.query).get("from", [""])[0]
    if sender or user:
        return
    yield ctx.error(
        "CL601",
        f"channel {name!r}: the email URL names no sender",
        path,
        hint="add ?from=billing@yourcompany.com (nothing can be emailed without a sender account)",
        excerpt=False,
    )
