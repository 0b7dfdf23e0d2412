"""`/auth/*`: the page's sign-in and sign-out, and whether this browser is signed in.

`POST /auth/signin` with `{"token": "<API_TOKEN>"}` sets the session cookie
(worker/api/auth.py); a wrong token is a 401 with a plain reason. `POST /auth/signout`
clears it. `GET /auth/session` says whether a token is required and whether this request
is authenticated, so the page knows to show its form.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
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


#: Failed sign-ins one client address may make per window before it must wait.
MAX_FAILED_SIGNINS = 10
#: The window, seconds.
SIGNIN_WINDOW_SECONDS = 300.0


class SignIn(BaseModel):
    token: str = Field(min_length=1, max_length=1000)


class SigninThrottle:
    """At most MAX_FAILED_SIGNINS wrong tokens per client address per window; then every
    sign-in from it is refused until the oldest failure leaves the window (per process:
    enough to make guessing the token hopeless, not a shared rate limiter). Thread-safe."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, client: str, now: float) -> float:
        """0 when `client` may try now, else seconds until it may."""
        with self._lock:
            failures = self._failures.get(client)
            if failures is None:
                return 0.0
            while failures and now - failures[0] >= SIGNIN_WINDOW_SECONDS:
                failures.popleft()
            if not failures:
                del self._failures[client]
                return 0.0
            if len(failures) < MAX_FAILED_SIGNINS:
                return 0.0
            return SIGNIN_WINDOW_SECONDS - (now - failures[0])

    def failed(self, client: str, now: float) -> None:
        with self._lock:
            self._failures.setdefault(client, deque()).append(now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def auth_router(settings: Settings, clock: Callable[[], float] = time.time) -> APIRouter:
    router = APIRouter(prefix="/auth", tags=["auth"])
    token = configured_token(settings)
    throttle = SigninThrottle()

    @router.get("/session", summary="Whether a token is required and this request has one")
    def session(request: Request) -> dict[str, Any]:
        signed_in = token is None or request_authenticated(request, token, clock())
        return {"auth_required": token is not None, "signed_in": signed_in}

    @router.post(
        "/signin",
        status_code=status.HTTP_204_NO_CONTENT,
        summary="Check API_TOKEN and set the session cookie",
        responses={
            401: {"description": "Wrong token"},
            429: {"description": "Too many wrong tokens from this address lately"},
        },
    )
    def signin(body: SignIn, request: Request, response: Response) -> None:
        client = request.client.host if request.client else "?"
        if token is None:
            return  # nothing to sign in to: every route is open (loopback only)
        now = clock()
        wait = throttle.wait_seconds(client, now)
        if wait > 0:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail=f"too many wrong tokens: try again in {wait:.0f} s",
                headers={"Retry-After": str(int(wait) + 1)},
            )
        if not secret_matches(body.token, token):
            throttle.failed(client, now)
            log.warning("status API sign-in refused from %s: wrong token", client)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="wrong token")
        throttle.succeeded(client)
        log.info("status API sign-in from %s", client)
        set_session_cookie(response, request, token, now)

    @router.post(
        "/signout", status_code=status.HTTP_204_NO_CONTENT, summary="Clear the session cookie"
    )
    def signout(request: Request, response: Response) -> None:
        clear_session_cookie(response, request)

    return router
