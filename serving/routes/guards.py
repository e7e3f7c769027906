"""Request guards: a body-size limit, strict JSON bodies, 422 answers that never echo the request.

:class:`BodyLimitMiddleware` answers 413 from a Content-Length above the limit before reading a
byte, and stops a body without one (chunked) as soon as it passes the limit.

Python's ``json`` accepts ``NaN``, ``Infinity`` and ``1e400`` (read as infinity), which then
reach validation and make FastAPI's 422 handler fail to serialise them (a 500). Routes built
with :class:`StrictJSONRoute` parse their body with :func:`loads_strict` instead, which refuses
non-finite numbers, nesting deeper than the interpreter's recursion limit and integers beyond
Python's digit limit as invalid JSON; a large body is parsed in the thread pool so the event
loop (and ``/healthz``) keeps answering meanwhile.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Bodies above this are parsed in the thread pool (below it the hop costs more than the parse).
OFFLOAD_BYTES = 64 * 1024
#: Longest text from the request that a 422 may quote (a location key, say).
MAX_QUOTED = 100


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:MAX_QUOTED]} does not fit a finite double")
    return value


def loads_strict(body: bytes) -> Any:
    """JSON as RFC 8259 has it: non-finite or unparsable input raises ``json.JSONDecodeError``."""
    try:
        return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        # Not JSONDecodeError: FastAPI would answer 400 (or, for RecursionError, 500).
        message = f"invalid JSON: {str(exc)[:MAX_QUOTED] or type(exc).__name__}"
        raise json.JSONDecodeError(message, "", 0) from exc


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            if len(body) > OFFLOAD_BYTES:
                self._json = await run_in_threadpool(loads_strict, body)
            else:
                self._json = loads_strict(body)
        return self._json


class StrictJSONRoute(APIRoute):
    """An APIRoute whose JSON body is parsed by :func:`loads_strict`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()

        async def handler(request: Request) -> Response:
            return await standard(StrictJSONRequest(request.scope, request.receive))

        return handler


def _quote(value: object) -> object:
    if isinstance(value, str):
        return value[:MAX_QUOTED]
    if isinstance(value, bool | int) and abs(int(value)) < 2**63:
        return value
    return str(value)[:MAX_QUOTED]


def _safe_error(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error without its ``input`` (never echoed) and with JSON-safe context."""
    out: dict[str, Any] = {
        "type": str(error.get("type", "")),
        "loc": [_quote(part) for part in error.get("loc", ())],
        "msg": str(error.get("msg", ""))[: MAX_QUOTED * 4],
    }
    context = error.get("ctx")
    if isinstance(context, dict):
        out["ctx"] = {str(k): _quote(v) for k, v in context.items()}
    return out


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 body (``{"detail": [errors]}``) minus the inputs: a 1000-id list, a huge
    string or a NaN is named by its location, never sent back."""
    assert isinstance(exc, RequestValidationError)
    errors = [_safe_error(dict(error)) for error in exc.errors()[:20]]
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


class BodyLimitMiddleware:
    """413 for a request body above ``max_bytes`` (pure ASGI: nothing buffered, nothing echoed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.detail = (
            f"request body larger than {max_bytes} bytes (SCORELOOP_MAX_BODY_BYTES); "
            "send fewer ids per request"
        )

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": self.detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send)  # the body is never read
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises an HTTPException from body reading as it is: a 413.
                    raise HTTPException(413, detail=self.detail)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await self._refuse(send)
