"""Who may post webhooks: `Authorization: Bearer <WEBHOOK_TOKEN>` or an HS256 JWT signed
with it.

Evolution sends no signature. Its instance webhook carries the headers configured with it:
either our token as a plain bearer header, or a `jwt_key` header, which Evolution replaces
by `Authorization: Bearer <jwt>` signed HS256 with that key (payload `iat`, `exp` ten
minutes later, `app: "evolution"`, `action: "webhook"`; webhook.controller.ts v2.3.7).
"""

from __future__ import annotations

import hmac

import jwt

#: Clock skew tolerated on a JWT's `exp`/`iat` (seconds).
JWT_LEEWAY_SECONDS = 60


def bearer_value(header: str | None) -> str | None:
    scheme, _, value = (header or "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def authorized(header: str | None, secret: str) -> bool:
    """The `Authorization` header carries `secret` (constant-time compare) or a valid,
    unexpired HS256 JWT signed with it."""
    given = bearer_value(header)
    if given is None:
        return False
    if hmac.compare_digest(given.encode(), secret.encode()):
        return True
    try:
        jwt.decode(
            given,
            secret,
            algorithms=["HS256"],
            leeway=JWT_LEEWAY_SECONDS,
            options={"require": ["exp"]},
        )
    except jwt.PyJWTError:
        return False
    return True
