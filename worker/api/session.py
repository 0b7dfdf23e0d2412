"""`/auth/*`: the page's sign-in and sign-out, and whether this browser is signed in.

`POST /auth/signin` with `{"token": "<API_TOKEN>"}` sets the session cookie
(worker/api/auth.py); a wrong token is a 401 with a plain reason. `POST /auth/signout`
clears it. `GET /auth/session` says whether a token is required and whether this request
is authenticated, so the page knows to show its form.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from config import Settings
from worker.api.auth import (
    clear_session_cookie,
    configured_token,
    request_authenticated,
    secret_matches,
    set_session_cookie,
)

log = logging.getLogger(__name__)


class SignIn(BaseModel):
    token: str = Field(min_length=1, max_length=1000)


def auth_router(settings: Settings, clock: Callable[[], float] = time.time) -> APIRouter:
    router = APIRouter(prefix="/auth", tags=["auth"])
    token = configured_token(settings)

    @router.get("/session", summary="Whether a token is required and this request has one")
    def session(request: Request) -> dict[str, Any]:
        signed_in = token is None or request_authenticated(request, token, clock())
        return {"auth_required": token is not None, "signed_in": signed_in}

    @router.post(
        "/signin",
        status_code=status.HTTP_204_NO_CONTENT,
        summary="Check API_TOKEN and set the session cookie",
        responses={401: {"description": "Wrong token"}},
    )
    def signin(body: SignIn, request: Request, response: Response) -> None:
        client = request.client.host if request.client else "?"
        if token is None:
            return  # nothing to sign in to: every route is open (loopback only)
        if not secret_matches(body.token, token):
            log.warning("status API sign-in refused from %s: wrong token", client)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="wrong token")
        log.info("status API sign-in from %s", client)
        set_session_cookie(response, request, token, clock())

    @router.post(
        "/signout", status_code=status.HTTP_204_NO_CONTENT, summary="Clear the session cookie"
    )
    def signout(request: Request, response: Response) -> None:
        clear_session_cookie(response, request)

    return router
