"""The API's error answers: every failure as a JSON `ErrorBody` (2.7.3, 2.7.4).

Invalid input is a 422 naming each field; an online store that cannot be read a 503; PostgreSQL
(registry, offline store) failing inside a request a 503; anything unexpected a 500 without a
traceback (the server logs it). Hosts, paths and database names are redacted (`request_limits.public`).
"""
from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
import redis
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from feast.errors import FeastObjectNotFoundException

from course_lib import request_limits
from course_lib.api_models import MAX_CANDIDATES, MAX_K, ErrorBody, FieldError
from course_lib.errors import reason
from course_lib.health import online_store_hint, registry_hint
from course_lib.request_limits import public

ONLINE_STORE_ERRORS = (redis.RedisError, sqlite3.Error)
POSTGRES_ERRORS = (psycopg.Error, sqlalchemy.exc.SQLAlchemyError)  # the registry and the offline store

ERRORS: dict[int | str, dict[str, Any]] = {
    **request_limits.RESPONSES,
    422: {"model": ErrorBody, "description": "invalid ids or body; `fields` names them"},
    409: {"model": ErrorBody, "description": "a Feast definition the request needs is not registered"},
    500: {"model": ErrorBody, "description": "an unexpected error; the server's log has the details"},
    503: {"model": ErrorBody, "description": "the online store cannot be reached"}}



def field_errors(exc: RequestValidationError) -> list[FieldError]:
    """FastAPI's validation errors as named fields (`movie_ids[3]`, `user_id`, `body`)."""
    out = []
    for error in exc.errors():
        location, *path = [str(part) for part in error["loc"]] or ["body"]
        if error["type"] == "json_invalid":
            path = []
        name = "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in path).lstrip(".") or location
        out.append(FieldError(field=name, location=location, message=error["msg"], type=error["type"]))
    return out


def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 naming every invalid field (registered for RequestValidationError)."""
    assert isinstance(exc, RequestValidationError), exc
    request.app.state.metrics.count_error("invalid_request")
    fields = field_errors(exc)
    body = ErrorBody(error="invalid_request", detail="; ".join(f"{f.field}: {f.message}" for f in fields),
                     hint=(f"ids are positive integers; POST /recommendations takes {{user_id, movie_ids "
                           f"(1-{MAX_CANDIDATES} distinct ids), k (1-{MAX_K}, default 10)}}; see /docs"),
                     fields=fields)
    return JSONResponse(body.model_dump(), status_code=422)


def invalid_event(exc: Exception) -> JSONResponse:
    """422 for an event the schema accepts but the store cannot (`events[3].movie_id: movie 9 is not ...`)."""
    field, message = str(exc).split(": ", 1)
    body = ErrorBody(error="invalid_request", detail=str(exc), hint="fix that event and send the batch again",
                     fields=[FieldError(field=field, location="body", message=message, type="value_error")])
    return JSONResponse(body.model_dump(), status_code=422)


def _failed(request: Request, exc: Exception, error: str, hint: str, status: int) -> JSONResponse:
    """Count the error and answer `status` with the cause and the hint, both redacted."""
    request.app.state.metrics.count_error(error)
    profile = request.app.state.services.profile
    body = ErrorBody(error=error, detail=public(reason(exc), profile), hint=public(hint, profile))
    return JSONResponse(body.model_dump(), status_code=status)


def online_store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 when the online store cannot be read; nothing is cached, so the next call retries."""
    return _failed(request, exc, "online_store_unavailable", online_store_hint(request.app.state.services.profile), 503)


def postgres_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 when a request could not do without PostgreSQL (the registry or the offline store) and it failed."""
    return _failed(request, exc, "postgres_unavailable", registry_hint(request.app.state.services.profile), 503)


def definitions_missing(request: Request, exc: Exception) -> JSONResponse:
    """409 when a request needs a Feast object the registry does not hold (e.g. `POST /events` before notebook 08)."""
    return _failed(request, exc, "definitions_missing", "`course apply` registers the course's views; POST /events "
                   "also needs the real-time views that notebook 08 registers (`events.enable`)", 409)


def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """500 for anything unexpected: a JSON `ErrorBody`, never a traceback (the server logs it)."""
    body = ErrorBody(error="internal_error", detail=type(exc).__name__,
                     hint="an unexpected error in the API; the server's log has the details. GET /health shows "
                          "whether a component is down")
    return JSONResponse(body.model_dump(), status_code=500)


def install(app: FastAPI) -> None:
    """Register the error handlers on the app."""
    app.add_exception_handler(RequestValidationError, invalid_request)
    for error_type in ONLINE_STORE_ERRORS:
        app.add_exception_handler(error_type, online_store_unavailable)
    for pg_error in POSTGRES_ERRORS:
        app.add_exception_handler(pg_error, postgres_unavailable)
    app.add_exception_handler(FeastObjectNotFoundException, definitions_missing)
    app.add_exception_handler(Exception, internal_error)
