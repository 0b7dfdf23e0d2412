"""The Evolution API boundary's own exceptions.

`worker.evolution.client` converts every httpx error and every non-success answer into
one of these, once, at the edge; nothing above it catches `httpx.HTTPError`.

    EvolutionError
      TransientEvolutionError     not sent, may succeed later: no connection, the request
                                  not fully written, Evolution's own 5xx error envelope
        InstanceRateLimited       429; retry later on this instance
        InstanceUnavailable       404 unknown instance; a dead session (400, or 500
                                  `Connection Closed`); an instance not loaded (500)
        EvolutionLicenceRequired  503 `LICENSE_REQUIRED`: the server is not activated
      SendOutcomeUnknown          the request was written and no trustworthy answer came
                                  (read timeout, reset, a 5xx without Evolution's envelope)
      LookUpUnavailable           Evolution cannot be asked about sent messages
      EvolutionAuthError          401/403: our configuration is wrong
      PermanentRecipientError     permanent for that recipient
        RecipientNotOnWhatsApp    400 with `exists: false`

Messages never contain a full phone number or the API key.
"""

from __future__ import annotations

from typing import Any


class EvolutionError(Exception):
    """Base of every Evolution API failure.

    `instance` is the instance the call was about (None for calls about all of them);
    `status_code` is the HTTP status when the server answered, None otherwise.
    """

    def __init__(
        self, message: str, *, instance: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.instance = instance
        self.status_code = status_code

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the keyword-only attributes across pickling (Celery result backends).
        return (self.__class__, self.args, self.__dict__)


class TransientEvolutionError(EvolutionError):
    """May succeed if retried later (on the same or another instance)."""


class InstanceRateLimited(TransientEvolutionError):
    """HTTP 429: this instance is rate limited now.

    `retry_after_seconds` comes from the Retry-After header (seconds), None if absent.
    """

    def __init__(
        self,
        message: str,
        *,
        instance: str | None = None,
        status_code: int | None = 429,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message, instance=instance, status_code=status_code)
        self.retry_after_seconds = retry_after_seconds


class InstanceUnavailable(TransientEvolutionError):
    """The instance cannot send now (unknown to the server, or its session is dead)."""


class SendOutcomeUnknown(EvolutionError):
    """The send request was written and no trustworthy answer came back: the message may
    have gone out. Its slot stays spent, and Evolution is asked before it is sent again."""


class LookUpUnavailable(EvolutionError):
    """Evolution cannot say which messages it sent (no findMessages route, an error
    answer, or it keeps no messages)."""


class EvolutionAuthError(EvolutionError):
    """HTTP 401/403: the API key or URL is wrong. Not the recipient's fault."""


class EvolutionLicenceRequired(TransientEvolutionError):
    """HTTP 503 with `code: LICENSE_REQUIRED`: the Evolution server is not activated (the
    licence gate of Evolution 2.4), so it refuses every business route before looking at the
    request. Nothing was sent. A configuration error of the server, not a fault of any
    number or recipient: it says nothing about an instance's health."""


class PermanentRecipientError(EvolutionError):
    """Retrying will not help for this recipient, on any instance."""


class RecipientNotOnWhatsApp(PermanentRecipientError):
    """The number has no WhatsApp account (HTTP 400, `exists: false`)."""
