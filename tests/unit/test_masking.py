"""What Flower shows of task arguments: masked phones, shortened texts."""

from __future__ import annotations

import io
import json
import logging
import pickle
import uuid
from typing import Any

import pytest
from celery.utils.saferepr import saferepr

from worker.celery_masking import MAX_REPR_CHARS, _mask_published_headers, args_repr, kwargs_repr
from worker.masking import (
    PhoneMaskingFilter,
    install_log_masking,
    mask_phones_in,
    masked_args,
    masked_kwargs,
    shorten,
)

TEXT = "Olá doutor, sua consulta de amanhã está confirmada."


def test_kwargs_mask_phone_and_shorten_text() -> None:
    shown = kwargs_repr(
        {"phone": "+55 11 99999-8888", "text": TEXT, "contact_id": "d-1", "ttl_seconds": 60}
    )
    assert "5511*******88" in shown and "99999" not in shown
    assert "Olá doutor, sua cons…(51 chars)" in shown and "confirmada" not in shown
    assert "'contact_id': 'd-1'" in shown and "60" in shown


def test_positional_phone_and_text_are_masked_too() -> None:
    shown = args_repr(["5511999998888", TEXT, "d-1"])
    assert shown.startswith("['5511*******88', 'Olá doutor, sua cons…")
    assert "'d-1'" in shown


def test_short_text_is_kept() -> None:
    assert shorten("oi") == "oi"


def test_publish_headers_are_rewritten_for_our_tasks_only() -> None:
    body: Any = ((), {"phone": "5511999998888", "text": TEXT}, {})
    ours = {"task": "zapdispatch.send_message", "argsrepr": "()", "kwargsrepr": "raw"}
    _mask_published_headers(body=body, headers=ours)
    assert "5511*******88" in ours["kwargsrepr"]
    theirs = {"task": "other.task", "kwargsrepr": "raw"}
    _mask_published_headers(body=body, headers=theirs)
    assert theirs["kwargsrepr"] == "raw"


def test_log_filter_masks_bare_phone_numbers_in_any_record() -> None:
    assert mask_phones_in("body {'phone': '5511999998888'} +5511999998888") == (
        "body {'phone': '5511*******88'} 5511*******88"
    )
    uuid_text = "task 0bc4aa89-425a-45e5-af70-5be337d2dbcc at 2026-11-22 18:19:18,724"
    assert mask_phones_in(uuid_text) == uuid_text
    record = logging.LogRecord(
        "celery", logging.ERROR, "x", 1, "bad body %r", ("5511999998888",), None
    )
    PhoneMaskingFilter().filter(record)
    assert record.getMessage() == "bad body '5511*******88'"


def test_the_fast_repr_is_exactly_celery_s_saferepr_for_usual_arguments() -> None:
    usual = {"phone": "5511999998888", "text": TEXT, "contact_id": "d-1", "ttl_seconds": 60}
    expected = str(saferepr(masked_kwargs(usual)))
    assert kwargs_repr(usual) == expected
    assert args_repr(["5511999998888", TEXT, None, 1.5]) == str(
        saferepr(masked_args(["5511999998888", TEXT, None, 1.5]))
    )


def test_odd_or_large_arguments_keep_celery_s_saferepr() -> None:
    odd = {"phone": "5511999998888", "extra": "x" * 500, "n": {"a": [1]}}
    assert kwargs_repr(odd) == str(saferepr(masked_kwargs(odd)))
    assert "5511*******88" in kwargs_repr(odd)
    many = list(range(1_000))
    assert args_repr(many) == str(saferepr(masked_args(many)))[: MAX_REPR_CHARS - 1] + "…"


PHONE = "5511999998888"
MASKED = "5511*******88"

#: Every way a phone number shows up in a log line, and what must be left of it.
IN_TEXT = [
    ("+55 (11) 99999-8888", MASKED),
    ("+55 11 99999-8888", MASKED),
    ("55 11 99999 8888", MASKED),
    ("+55-11-99999-8888", MASKED),
    ("(11) 99999-8888", "1199*****88"),
    ("+5511999998888", MASKED),
    (PHONE, MASKED),
    (repr("\n" + PHONE), "'\\n" + MASKED + "'"),
    (repr(pickle.dumps({"phone": PHONE})), MASKED),
    ("\\x0c" + PHONE, MASKED),
    (json.dumps({"phone": PHONE}), MASKED),
]


@pytest.mark.parametrize(("text", "left"), IN_TEXT)
def test_every_phone_format_is_masked_through_real_logging(text: str, left: str) -> None:
    stream = io.StringIO()
    logger = logging.getLogger(f"zd-test-mask-{uuid.uuid4().hex}")
    logger.addHandler(logging.StreamHandler(stream))
    logger.propagate = False
    install_log_masking(logger)
    logger.error("refused body: %s", text)
    try:
        raise ValueError(f"phone {text} is bad")
    except ValueError:
        logger.exception("task failed")
    written = stream.getvalue()
    assert left in written, written
    assert "99999-8888" not in written and "99999 8888" not in written, written
    assert PHONE not in written and "999998888" not in written, written


def test_ids_times_and_counts_are_left_alone() -> None:
    for text in (
        "task 0bc4aa89-425a-45e5-af70-5be337d2dbcc at 2026-11-22 18:19:18,724",
        "took 1234 ms for 56789 12345 items",
        "from 192.168.100.200 port 5555",
    ):
        assert mask_phones_in(text) == text


@pytest.mark.parametrize(
    "phone_value",
    [
        5511999998888,
        [PHONE, 5511999998888],
        {"home": PHONE, "work": "+55 (11) 99999-8888"},
        ("+55 11 99999-8888",),
        5511999998888.0,
    ],
)
def test_flower_reprs_mask_phones_of_any_type(phone_value: Any) -> None:
    shown = kwargs_repr({"phone": phone_value, "text": "oi"}) + args_repr([phone_value, "oi"])
    assert "999998888" not in shown and "99999-8888" not in shown, shown


def test_phones_anywhere_in_the_arguments_are_masked() -> None:
    shown = kwargs_repr({"contact_id": PHONE, "extra": {"to": [f"call {PHONE}"]}})
    assert PHONE not in shown and MASKED in shown


def test_flower_reprs_are_bounded() -> None:
    huge = {"phone": PHONE, "text": "y" * 100_000, "extra": "z" * 100_000}
    assert len(kwargs_repr(huge)) <= MAX_REPR_CHARS
    assert len(args_repr(["x" * 100_000] * 50)) <= MAX_REPR_CHARS
    assert len(kwargs_repr("w" * 100_000)) <= MAX_REPR_CHARS
