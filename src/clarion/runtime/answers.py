"""What every HTTP answer of the sidecar shares: the error shape and the time format."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from clarion.runtime.schedule import iso

__all__ = ["error", "iso"]


def error(status: int, code: str, message: str, details: list[Any] | None = None) -> JSONResponse:
    """`{"error": {"code", "message", "details"}}`, the one error shape of the API."""
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details or []}}, status
    )
