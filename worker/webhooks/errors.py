"""The webhook boundary's own exceptions.

WebhookError
  MalformedWebhook      the body is not an Evolution envelope we can read (HTTP 400/422)
"""

from __future__ import annotations


class WebhookError(Exception):
    """Base of every webhook failure."""


class MalformedWebhook(WebhookError):
    """The body is not JSON, not an envelope, or its `data` lacks what its event needs."""


class BodyNotJson(MalformedWebhook):
    """The body is not UTF-8 JSON."""
