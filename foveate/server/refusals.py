"""How ``foveate serve`` refuses a request: an OpenAI-style JSON error with the 4xx (or 5xx) status that says
whose fault it is, and a machine-readable ``code``."""

from __future__ import annotations

from fastapi.responses import JSONResponse

__all__ = ["Refused", "error"]


class Refused(Exception):
    """A request refused with ``status``; ``code`` is the machine-readable reason."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def error(status: int, message: str, code: str) -> JSONResponse:
    kind = {
        401: "authentication_error",
        429: "rate_limit_error",
        500: "server_error",
        503: "server_error",
    }.get(status, "invalid_request_error")
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status)
