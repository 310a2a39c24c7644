"""`{secret:NAME}` placeholders, and credentials written into URLs where a placeholder belongs.

The checker finds a literal credential and says where it is, never what it is.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

PLACEHOLDER = re.compile(r"\{secret:([^}]*)\}")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MARK = "\x00secret\x00"
_CREDENTIAL_PARAMS = frozenset(
    {
        "password",
        "pass",
        "passwd",
        "token",
        "secret",
        "apikey",
        "api_key",
        "key",
        "access_token",
        "auth",
        "authorization",
        "pwd",
    }
)
# Where each scheme carries a credential besides `user:password@` and the query string.
_USER_IS_CREDENTIAL = frozenset({"whatsapp", "pover", "pushover", "join", "prowl"})
_HOST_IS_CREDENTIAL = frozenset({"viber", "tgram", "fcm", "slack", "discord", "sns", "pbul"})
_PATH_IS_CREDENTIAL = frozenset({"slack", "discord", "gotify", "gotifys", "sns", "fcm"})


def secret_names(text: str) -> list[str]:
    return PLACEHOLDER.findall(text)


def literal_credentials(url: str) -> list[str]:
    """Which parts of `url` hold a credential written out (their names, never their values)."""
    marked = PLACEHOLDER.sub(_MARK, url)
    try:
        parts = urlsplit(marked)
        # .password / .username / .hostname parse lazily and may raise on odd netlocs
        password, username = parts.password, parts.username
    except ValueError:
        return []
    scheme = parts.scheme.lower()
    found: list[str] = []

    def literal(value: str | None) -> bool:
        return bool(value) and value != _MARK and "{to}" not in (value or "")

    if literal(password):
        found.append("password")
    if scheme in _USER_IS_CREDENTIAL and literal(username):
        found.append("token")
    netloc = parts.netloc.rpartition("@")[2]
    if scheme in _HOST_IS_CREDENTIAL and literal(netloc):
        found.append("token")
    if scheme in _PATH_IS_CREDENTIAL:
        segments = [s for s in parts.path.split("/") if s]
        if scheme in ("gotify", "gotifys"):
            segments = segments[-1:]
        if scheme in ("sns", "fcm"):
            segments = segments[:1]
        if any(literal(s) for s in segments):
            found.append("token")
    for key, value in parse_qsl(parts.query, keep_blank_values=False):
        if key.lower() in _CREDENTIAL_PARAMS and literal(value):
            found.append(f"`{key}` parameter")
    return list(dict.fromkeys(found))


_URLISH = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"']+")
_CREDENTIAL_KEY = re.compile(
    r"(?i)(?:^|[\s{,])[\"']?(password|passwd|pwd|token|secret|api_?key|access_token)[\"']?"
    r"\s*:\s+(?![\"']?\{secret:)[^\s#]"
)


def line_may_hold_secret(line: str) -> bool:
    """Whether a source line must not be echoed: it writes out a credential somewhere."""
    if _CREDENTIAL_KEY.search(line):
        return True
    return any(literal_credentials(url) for url in _URLISH.findall(line))
