"""Producer input validation: each bad input gets a clear reason."""

from __future__ import annotations

import pytest

from worker.message_input import (
    InvalidMessage,
    content_hash,
    positional_fields,
    rejection,
    validate,
)
from worker.phones import mask_id, mask_phone, normalize_phone

NOW = 1_790_000_000.0


def check(**fields: object) -> str:
    with pytest.raises(InvalidMessage) as err:
        validate(fields, now=NOW, default_ttl_seconds=3600)
    return str(err.value)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("+55 11 99999-8888", "5511999998888"),
        ("(11) 99999-8888", "5511999998888"),
        ("5511999998888", "5511999998888"),
        ("+1 650 253 0000", "16502530000"),
    ],
)
def test_phones_in_common_formats_are_normalized(raw: str, normalized: str) -> None:
    assert normalize_phone(raw) == normalized


def test_valid_message_defaults_contact_to_phone_and_ttl() -> None:
    new = validate({"phone": "+55 11 99999-8888", "text": "oi"}, now=NOW, default_ttl_seconds=3600)
    assert new.contact_id == "5511999998888"
    assert new.expires_at.timestamp() == NOW + 3600
    assert new.content_hash == content_hash("5511999998888", "oi", "5511999998888")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"text": "oi"}, "phone is required"),
        ({"phone": "12", "text": "oi"}, "not a valid number"),
        ({"phone": "not a phone", "text": "oi"}, "cannot be parsed"),
        ({"phone": 5511999998888, "text": "oi"}, "non-empty string"),
        ({"phone": "+5511999998888"}, "text is required"),
        ({"phone": "+5511999998888", "text": ""}, "text is empty"),
        ({"phone": "+5511999998888", "text": "   "}, "text is empty"),
        ({"phone": "+5511999998888", "text": "x" * 4097}, "4097 characters"),
        ({"phone": "+5511999998888", "text": "x" * 1_000_000}, "1000000 characters"),
        ({"phone": "+5511999998888", "text": 42}, "text must be a string"),
        ({"phone": "+5511999998888", "text": "oi", "contact_id": 7}, "contact_id must be a str"),
        ({"phone": "+5511999998888", "text": "oi", "ttl_seconds": 0}, "ttl_seconds must be pos"),
        ({"phone": "+5511999998888", "text": "oi", "ttl_seconds": -5}, "already be expired"),
        ({"phone": "+5511999998888", "text": "oi", "ttl_seconds": "60"}, "must be an integer"),
        ({"phone": "+5511999998888", "text": "oi", "priority": 1}, "unknown argument(s): priority"),
        ({"phone": "+5511999998888", "text": "a\x00b"}, "text contains a NUL character"),
        ({"phone": "+5511999998888", "text": "\ufeff"}, "text is empty"),
        ({"phone": "+5511999998888", "text": "\u00a0\u202f\u3000"}, "text is empty"),
        ({"phone": "+5511999998888", "text": "a\ud800"}, "text contains a lone surrogate"),
        (
            {"phone": "+5511999998888", "text": "oi", "contact_id": "d\x00"},
            "contact_id contains a NUL",
        ),
        (
            {"phone": "+5511999998888", "text": "oi", "idempotency_key": "\udfff"},
            "idempotency_key contains a lone surrogate",
        ),
    ],
)
def test_bad_input_is_rejected_with_a_clear_reason(fields: dict[str, object], reason: str) -> None:
    assert reason in check(**fields)


def test_text_of_exactly_4096_characters_is_accepted() -> None:
    new = validate({"phone": "+5511999998888", "text": "x" * 4096}, now=NOW, default_ttl_seconds=60)
    assert len(new.text) == 4096


def test_rejection_keeps_oversized_input_bounded() -> None:
    bad = rejection({"phone": "x" * 500, "text": "y" * 1_000_000}, "too long", now=NOW)
    assert len(bad.text) == 4096 and bad.reason == "too long"


def test_positional_arguments_map_to_the_documented_order() -> None:
    assert positional_fields(("+5511999998888", "oi")) == {"phone": "+5511999998888", "text": "oi"}
    with pytest.raises(InvalidMessage):
        positional_fields(tuple(range(7)))


def test_masks_hide_the_middle_of_numbers() -> None:
    assert mask_phone("5511999998888") == "5511*******88"
    assert mask_id("5511999998888") == "5511*******88"
    assert mask_id("doctor-1234567") == "doctor-1…"


def test_rejection_escapes_what_postgresql_cannot_store() -> None:
    bad = rejection(
        {"phone": "55\x00", "text": "a\x00b\ud800", "idempotency_key": "k\x00"}, "r\x00", now=NOW
    )
    assert bad.text == "a\\x00b\\ud800" and bad.raw_phone == "55\\x00" and bad.reason == "r\\x00"
    assert bad.idempotency_key is None
    for value in (bad.text, bad.raw_phone, bad.reason):
        value.encode("utf-8")
