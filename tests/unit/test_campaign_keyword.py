"""The producer keyword `campaign`: optional, a string of 1..100 characters."""

from __future__ import annotations

import pytest

from worker.message_input import InvalidMessage, positional_fields, rejection, validate

NOW = 1_790_000_000.0
BASE = {"phone": "+55 11 99999-8888", "text": "oi"}


def test_campaign_is_optional_and_kept() -> None:
    assert validate(BASE, now=NOW, default_ttl_seconds=60).campaign is None
    new = validate({**BASE, "campaign": "november-flu"}, now=NOW, default_ttl_seconds=60)
    assert new.campaign == "november-flu"
    edge = validate({**BASE, "campaign": "c" * 100}, now=NOW, default_ttl_seconds=60)
    assert edge.campaign == "c" * 100


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "campaign must have 1..100 characters"),
        ("   ", "campaign must have 1..100 characters"),
        ("c" * 101, "campaign must have 1..100 characters"),
        (7, "campaign must be a string, got int"),
        (["a"], "campaign must be a string, got list"),
    ],
)
def test_bad_campaign_is_rejected_with_a_clear_reason(value: object, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        validate({**BASE, "campaign": value}, now=NOW, default_ttl_seconds=60)


def test_rejected_input_keeps_a_valid_campaign_only() -> None:
    kept = rejection({**BASE, "text": "", "campaign": "nov"}, "text is empty", now=NOW)
    assert kept.campaign == "nov"
    dropped = rejection({**BASE, "campaign": "c" * 101}, "too long", now=NOW)
    assert dropped.campaign is None


def test_campaign_is_the_sixth_positional_argument() -> None:
    fields = positional_fields(("+5511999998888", "oi", None, None, None, "nov"))
    assert fields["campaign"] == "nov"
