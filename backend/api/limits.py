"""Request-size bound, enforced before any handler reads the body (STYLE.md: limit everything)."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_body_bytes_max = 1_048_576  # 1 MiB: a bulk request of 1,000 invoices fits


class BodyTooLarge(StarletteHTTPException):
    """Raised while the body streams in; an HTTPException so FastAPI's body reader passes it
    through to the error handler (which renders 413 `body_too_large`)."""

    def __init__(self) -> None:
        super().__init__(413, f"request body larger than {request_body_bytes_max} bytes")


def _too_large_body() -> bytes:
    return json.dumps(
        {
            "error": {
                "type": "invalid_request_error",
                "code": "body_too_large",
                "message": f"request body larger than {request_body_bytes_max} bytes",
                "param": None,
            }
        }
    ).encode()


class BodyLimitMiddleware:
    """413 in the API's error shape when Content-Length, or the bytes actually sent, exceed the
    bound (a chunked body without Content-Length is counted as it streams in)."""

    def __init__(self, app: ASGIApp, limit_bytes: int = request_body_bytes_max) -> None:
        self.app = app
        self.limit_bytes = limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.limit_bytes + 1
                if declared > self.limit_bytes:
                    await _send_413(send)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _send_413(send)


async def _send_413(send: Any) -> None:
    body = _too_large_body()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
