"""Strict JSON bodies for the API, and what the OpenAPI document says about them.

Every API route reads its JSON body through :class:`StrictJSONRoute`: numbers that are not
finite (``1e999``, ``NaN``, ``Infinity``) and text holding a NUL character are refused (422
naming the field: a database cannot store them faithfully), and a body that is not JSON
at all is a 400. Neither is raised while the body is read: the problem is remembered and
reported when the body is validated, which FastAPI does after the route's dependencies,
so a request without valid credentials gets its 401 first.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any, get_args

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import request_response

SCOPE_KEY = "nurture.body_problem"


class BodyProblem:
    """Why a JSON body was refused: ``status`` 400 (not JSON) or 422 (a refused value)."""

    def __init__(self, status: int, message: str, field: str) -> None:
        self.status = status
        self.message = message
        self.field = field


class _Refused(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number a value may hold")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"{text} is out of range (not a finite number)")
    return value


def _nul_path(document: Any) -> str | None:
    """The dotted path of the first text (value or key) holding a NUL character."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return path or "body"
        elif isinstance(value, dict):
            for key, item in value.items():
                sub = f"{path}.{key}" if path else str(key)
                if "\x00" in key:
                    return sub
                stack.append((sub, item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}" if path else str(i), item) for i, item in enumerate(value))
    return None


def parse_strict_json(body: bytes) -> Any:
    """The JSON document of ``body``; raises :class:`_BodyError` (with the problem)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = BodyProblem(400, f"the body is not UTF-8 text: {exc.reason}", "body")
        raise _BodyError(problem) from None
    try:
        document = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except _Refused as exc:
        raise _BodyError(BodyProblem(422, f"body: {exc}", "body")) from None
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise _BodyError(BodyProblem(400, f"the body is not valid JSON: {reason}", "body")) from None
    where = _nul_path(document)
    if where is not None:
        raise _BodyError(BodyProblem(422, f"{where}: text may not contain NUL characters", where))
    return document


class _BodyError(Exception):
    def __init__(self, problem: BodyProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _Unreadable:
    """What the body validates as when it was refused: matches no schema."""


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = parse_strict_json(await self.body())
            except _BodyError as exc:
                self.scope[SCOPE_KEY] = exc.problem
                self._json = _Unreadable()
        return self._json


def body_problem(request: Request) -> BodyProblem | None:
    problem = request.scope.get(SCOPE_KEY)
    return problem if isinstance(problem, BodyProblem) else None


def reject_bad_body(request: Request) -> None:
    """A dependency placed after authentication: the body's problem, if it had one (a body
    that validates anyway, such as garbage sent where every field is optional, must not
    reach the endpoint)."""
    problem = body_problem(request)
    if problem is not None:
        raise RefusedBody(problem)


class RefusedBody(Exception):
    def __init__(self, problem: BodyProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            return await original(StrictJSONRequest(request.scope, request.receive))

        return handler


def make_strict(route: APIRoute) -> None:
    """Turn an already built API route into a :class:`StrictJSONRoute` (before the router
    including it builds its handlers, which it does through ``get_route_handler``)."""
    if not isinstance(route, StrictJSONRoute):
        route.__class__ = StrictJSONRoute
        route.app = request_response(route.get_route_handler())


def strict_types(annotation: Any) -> None:
    """Make the JSON body models in ``annotation`` (and the models they nest) strict: no
    ``0``/``1``/``"yes"`` for a boolean, no ``true`` for a number, no number for text.
    Form bodies (file uploads) keep their text coercion."""
    pending = [annotation]
    seen: set[type[BaseModel]] = set()
    while pending:
        current = pending.pop()
        pending.extend(get_args(current))
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or current in seen:
            continue
        seen.add(current)
        if current.__name__.startswith("Body_"):  # FastAPI's model of a form body
            continue
        for info in current.model_fields.values():
            pending.append(info.annotation)
        if not current.model_config.get("strict"):
            current.model_config["strict"] = True
            current.model_rebuild(force=True)


BAD_JSON_RESPONSE: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not valid JSON (or not UTF-8)."}
}
