"""The API's limits on what a caller can send and learn (issue 19).

- Bodies over `MAX_BODY_BYTES` are refused with a 413 before they are parsed: by their
  Content-Length, or by counting the bytes as they arrive when it is absent (chunked); only
  `application/json` bodies are parsed (FastAPI's strict content type).
- Path ids are decimal digits only: `1.0`, `+5`, `1_000`, ` 7` and ids beyond int64 are 422s,
  not quietly converted.
- Every 4xx, including FastAPI's own 400 for a body it cannot parse (a 5000-digit integer,
  deep nesting), 404, 405 and 413, answers with the course's `ErrorBody`.
- Error bodies and `/health` name what failed and how to fix it, but not hosts, ports, paths or
  database names, unless `COURSE_API_DEBUG` is on (`public`).
"""
from __future__ import annotations

import pathlib
import re
import sys
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BeforeValidator
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from course_lib.api_models import MAX_ID, ErrorBody
from course_lib.config import REPO_ROOT, Profile

MAX_BODY_BYTES = 64 * 1024  # a full 1,000-candidate request is under 22 KB
ID_DIGITS = len(str(MAX_ID))
HTTP_ERRORS = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
               415: "unsupported_media_type"}
HINT = (f"send JSON (Content-Type: application/json) of at most {MAX_BODY_BYTES // 1024} KB to a documented "
        "route; see /docs")
RESPONSES: dict[int | str, dict[str, Any]] = {  # documented in the OpenAPI schema of every data route
    400: {"model": ErrorBody, "description": "the body is not parsable JSON (e.g. too deeply nested)"},
    413: {"model": ErrorBody, "description": f"the body is larger than {MAX_BODY_BYTES} bytes"}}
IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")
HOST_TUPLE = re.compile(r"\('<host>', \d+\)")  # how asyncio's errors print an address


def _digits_only(value: Any) -> Any:
    """A path id must be plain decimal digits (at most int64's 19); anything else is refused, not converted."""
    if isinstance(value, str) and not re.fullmatch(rf"[0-9]{{1,{ID_DIGITS}}}", value):
        raise ValueError(f"must be a positive integer written with digits only (at most {ID_DIGITS})")
    return value


PathId = Annotated[int, Path(gt=0, le=MAX_ID), BeforeValidator(_digits_only)]  # `/users/{user_id}/...`


def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Any HTTP error FastAPI or Starlette raises (400, 404, 405, 413 ...) as an `ErrorBody`."""
    assert isinstance(exc, HTTPException), exc
    kind = HTTP_ERRORS.get(exc.status_code, f"http_{exc.status_code}")
    request.app.state.metrics.count_error(kind)
    body = ErrorBody(error=kind, detail=str(exc.detail), hint=HINT)
    return JSONResponse(body.model_dump(), status_code=exc.status_code, headers=exc.headers)


class BodyLimit:
    """ASGI middleware: a 413 `ErrorBody` for a body over `max_bytes`, before anything parses it."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = http_error(Request(scope), HTTPException(413, self._detail(declared.decode(errors="replace"))))
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            """The next body chunk, or a 413 (FastAPI re-raises it to `http_error`) once the cap is passed."""
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self._detail(f"more than {received}"))
            return message

        await self.app(scope, counted, send)

    def _detail(self, size: str) -> str:
        """What was refused."""
        return f"the request body ({size} bytes) exceeds the limit of {self.max_bytes} bytes"


def install(app: FastAPI) -> None:
    """Cap request bodies and answer the app's HTTP errors with `ErrorBody`."""
    app.add_exception_handler(HTTPException, http_error)
    app.add_middleware(BodyLimit)


def _secrets(profile: Profile) -> list[tuple[str, str]]:
    """(text, placeholder) pairs a caller must not see, longest first: paths, hosts, database names."""
    s = profile.settings
    paths = {str(p) for p in (s.workdir, REPO_ROOT, sys.prefix, pathlib.Path.home()) if len(str(p)) > 1}
    hosts = {s.pg_host, s.redis_host, "localhost",
             *(node.strip().rpartition(":")[0] for node in s.redis_cluster_nodes.split(","))}
    ports = {str(s.pg_port), str(s.redis_port), *(node.rpartition(":")[2] for node in s.redis_cluster_nodes.split(","))}
    pairs = [(p, "<path>") for p in paths] + [(f"{h}:{p}", "<host>") for h in hosts for p in ports]
    pairs += [(h, "<host>") for h in hosts] + [(d, "<database>") for d in
                                              (s.registry_db, s.offline_db, s.scaleout_registry_db)]
    return sorted(pairs, key=lambda pair: -len(pair[0]))


def public(value: Any, profile: Profile) -> Any:
    """`value` (text, or dicts and lists of it) with hosts, paths and database names replaced,
    unless COURSE_API_DEBUG is on."""
    if profile.settings.api_debug:
        return value
    if isinstance(value, dict):
        return {key: public(item, profile) for key, item in value.items()}
    if isinstance(value, list):
        return [public(item, profile) for item in value]
    if not isinstance(value, str):
        return value
    for secret, placeholder in _secrets(profile):
        value = re.sub(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", placeholder, value)
    return HOST_TUPLE.sub("<host>", IPV4.sub("<host>", value))
