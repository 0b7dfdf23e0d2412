"""What Flower shows of task arguments: masked phones, shortened texts."""

from __future__ import annotations

from typing import Any

from worker.masking import _mask_published_headers, args_repr, kwargs_repr, shorten

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
