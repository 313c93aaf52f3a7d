"""Sign-in, sign-out, first-start setup and the user's own account (password, API tokens)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from sqlalchemy.orm import Session

from nurture.accounts import logins, setup, users
from nurture.accounts import tokens as account_tokens
from nurture.errors import NurtureError
from nurture.web.api.common import Now
from nurture.web.security.auth import current_user_optional
from nurture.web.security.csrf import csrf_protect
from nurture.web.security.sessions import end_session, login_with_password, start_session
from nurture.web.ui.render import (
    PublicReadSession,
    UiReadSession,
    UiUser,
    database,
    redirect,
    render,
    safe_next,
)

router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)


@router.get("/")
def home(request: Request) -> Response:
    if current_user_optional(request) is None:
        return redirect(request, "/login")
    return redirect(request, "/campaigns")


# --- sign in / out -------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, session: PublicReadSession, next: str | None = None) -> Response:
    if current_user_optional(request) is not None:
        return redirect(request, safe_next(next))
    return render(
        request,
        "ui/login.html",
        {"next": safe_next(next), "error": None, "login": "", "setup_needed": setup.setup_needed(session)},
    )


@router.post("/login")
def login_submit(
    request: Request,
    session: PublicReadSession,
    login: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str | None, Form()] = None,
) -> Response:
    target = safe_next(next)
    response = redirect(request, target)
    result = login_with_password(request, response, login, password)
    if isinstance(result, logins.LoginRefused):
        now = request.app.state.security.clock()
        wait = result.retry_after_seconds(now)
        message = (
            f"Too many failed attempts: try again in {max(1, (wait or 60) // 60)} minute(s)."
            if result.reason == "locked"
            else "Wrong email or password."
        )
        return render(
            request,
            "ui/login.html",
            {"next": target, "error": message, "login": login, "setup_needed": setup.setup_needed(session)},
            status_code=429 if result.reason == "locked" else 401,
        )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    response = redirect(request, "/login", "You are signed out.", "info")
    end_session(request, response)
    return response


# --- first start ---------------------------------------------------------------------------


def _check_setup(request: Request, session: PublicReadSession, now: Now, token: str | None) -> str:
    if not setup.setup_needed(session):
        raise HTTPException(status_code=404, detail="not found")
    try:
        setup.check_setup_token(request.app.state.runtime.settings.secret_key, token, now=now)
    except setup.SetupRefused as exc:
        raise HTTPException(status_code=403, detail={"code": exc.code, "message": exc.message}) from exc
    return token or ""


@router.get("/setup")
def setup_page(request: Request, session: PublicReadSession, now: Now, token: str | None = None) -> Response:
    token = _check_setup(request, session, now, token)
    return render(request, "ui/setup.html", {"token": token, "error": None, "values": {}})


@router.post("/setup")
def setup_submit(
    request: Request,
    now: Now,
    token: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    login: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    password2: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    values = {"name": name, "login": login}
    db = database(request)
    with db.read() as s:
        _check_setup(request, s, now, token)
    error: NurtureError | None = None
    if password != password2:
        error = NurtureError("the two passwords differ", field="password2")
    else:
        try:
            with db.transaction() as s:
                user = setup.complete_setup(
                    s,
                    secret_key=request.app.state.runtime.settings.secret_key,
                    token=token,
                    login=login,
                    password=password,
                    name=name,
                    now=now,
                )
                s.expunge(user)
        except NurtureError as exc:
            error = exc
    if error is not None:
        return render(
            request,
            "ui/setup.html",
            {"token": token, "error": error, "values": values},
            status_code=422,
        )
    response = redirect(request, "/campaigns", f"Welcome, {user.name}: your administrator account is ready.")
    start_session(request, response, user)
    return response


# --- the user's own account ----------------------------------------------------------------


def _account_context(session: Session, user_id: int) -> dict[str, object]:
    me = users.get_user(session, user_id)
    tokens = account_tokens.list_tokens(session, user_id=user_id)
    return {"me": me, "tokens": tokens}


@router.get("/account")
def account_page(request: Request, user: UiUser, session: UiReadSession) -> Response:
    return render(
        request,
        "ui/account.html",
        {**_account_context(session, user.id), "error": None, "new_token": None},
    )


@router.post("/account/password")
def change_password(
    request: Request,
    user: UiUser,
    now: Now,
    current: Annotated[str, Form(max_length=1024)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    password2: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    db = database(request)
    error: NurtureError | None = None
    if password != password2:
        error = NurtureError("the two new passwords differ", field="password2")
    else:
        try:
            with db.transaction() as s:
                me = users.get_user(s, user.id)
                users.change_own_password(
                    s, me, current, password, now=now, keep_session_id=user.session_id
                )
        except NurtureError as exc:
            error = exc
    if error is not None:
        with db.read() as s:
            return render(
                request,
                "ui/account.html",
                {**_account_context(s, user.id), "error": error, "new_token": None},
                status_code=422,
            )
    return redirect(request, "/account", "Your password was changed; your other browsers are signed out.")


@router.post("/account/tokens")
def create_token(
    request: Request,
    user: UiUser,
    now: Now,
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    db = database(request)
    error: NurtureError | None = None
    new_token: str | None = None
    try:
        with db.transaction() as s:
            me = users.get_user(s, user.id)
            new_token, _row = account_tokens.create_token(s, me, name.strip() or "UI token", now=now)
    except NurtureError as exc:
        error = exc
    with db.read() as s:
        return render(
            request,
            "ui/account.html",
            {**_account_context(s, user.id), "error": error, "new_token": new_token},
            status_code=422 if error else 200,
        )


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(request: Request, user: UiUser, now: Now, token_id: int) -> Response:
    with database(request).transaction() as s:
        row = account_tokens.get_token(s, token_id)
        if row.user_id != user.id:
            raise HTTPException(status_code=404, detail="not found")
        me = users.get_user(s, user.id)
        account_tokens.revoke_token(s, token_id, now=now, actor=me)
    return redirect(request, "/account", "The token was revoked.")
