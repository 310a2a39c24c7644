"""What every HTTP answer of the sidecar shares: the error shape and the time format."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi.responses import JSONResponse

from clarion.runtime.schedule import iso

__all__ = ["error", "iso", "read_json"]

# Half of a UTF-16 pair, escaped (\ud800) or as the bytes Python's json lets through: only a body
# holding one of these is checked the slow way.
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def read_json(body: bytes) -> Any:
    """The JSON value of a request body; ValueError (a short reason) for anything else,
    including text that is not valid Unicode, which no answer, store or template could hold."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError as exc:
        raise ValueError(str(exc).split(":")[0] or "not JSON") from None
    if _MAYBE_SURROGATE.search(body):
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise ValueError("a lone UTF-16 surrogate is not text") from None
    return value


def error(status: int, code: str, message: str, details: list[Any] | None = None) -> JSONResponse:
    """`{"error": {"code", "message", "details"}}`, the one error shape of the API."""
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details or []}}, status
    )
