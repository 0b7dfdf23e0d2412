"""Webhook parsing, auth and the settings it reads: pure functions on plain values."""

from __future__ import annotations

import time

import jwt
import pytest

from config.settings import Settings, fold_text, parse_codes, parse_keywords
from models.enums import Receipt
from worker.webhooks.auth import authorized
from worker.webhooks.errors import BodyNotJson, MalformedWebhook
from worker.webhooks.events import (
    Envelope,
    connection_change,
    event_key,
    inbound_message,
    parse_body,
    receipt_update,
)
from worker.webhooks.service import phone_candidates

SECRET = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "name", ["connection.update", "CONNECTION_UPDATE", "connection-update", "Connection.Update"]
)
def test_every_spelling_of_an_event_is_one_key(name: str) -> None:
    assert event_key(name) == "CONNECTION_UPDATE"


def test_parse_body_rejects_non_json_apart() -> None:
    with pytest.raises(BodyNotJson):
        parse_body(b"nope")
    with pytest.raises(MalformedWebhook):
        parse_body(b'{"event": "x"}')


def test_connection_change_from_both_events() -> None:
    update = Envelope("CONNECTION_UPDATE", "a", {"state": "close", "statusReason": 401})
    closed = connection_change(update)
    assert closed is not None and (closed.state, closed.reason) == ("close", 401)
    status = Envelope(
        "STATUS_INSTANCE", "a", {"status": "closed", "disconnectionReasonCode": "403"}
    )
    change = connection_change(status)
    assert change is not None and (change.state, change.reason) == ("close", 403)


def test_receipts_of_our_messages_only() -> None:
    ours = Envelope("MESSAGES_UPDATE", "a", {"keyId": "K", "fromMe": True, "status": "READ"})
    update = receipt_update(ours)
    assert update is not None and update.receipt is Receipt.READ
    theirs = Envelope("MESSAGES_UPDATE", "a", {"keyId": "K", "fromMe": False, "status": "READ"})
    assert receipt_update(theirs) is None


def test_inbound_text_from_either_field_and_only_from_contacts() -> None:
    def upsert(jid: str, message: object, from_me: bool = False) -> Envelope:
        key = {"remoteJid": jid, "fromMe": from_me, "id": "X"}
        return Envelope("MESSAGES_UPSERT", "a", {"key": key, "message": message})

    plain = inbound_message(upsert("5511999998888@s.whatsapp.net", {"conversation": "PARE"}))
    assert plain is not None and (plain.digits, plain.text) == ("5511999998888", "PARE")
    extended = upsert("5511999998888@s.whatsapp.net", {"extendedTextMessage": {"text": "oi"}})
    assert getattr(inbound_message(extended), "text", None) == "oi"
    assert inbound_message(upsert("120363@g.us", {"conversation": "x"})) is None
    assert inbound_message(upsert("5511999998888@s.whatsapp.net", {}, from_me=True)) is None


def test_brazilian_jids_without_the_ninth_digit_match_both_spellings() -> None:
    assert phone_candidates("551199998888") == ("551199998888", "5511999998888")
    assert phone_candidates("5511999998888") == ("5511999998888",)
    assert phone_candidates("14155550100") == ("14155550100",)


def test_auth_bearer_or_hs256_jwt() -> None:
    assert authorized(f"Bearer {SECRET}", SECRET)
    assert authorized(f"bearer  {SECRET} ", SECRET)
    token = jwt.encode({"exp": int(time.time()) + 600}, SECRET, algorithm="HS256")
    assert authorized(f"Bearer {token}", SECRET)
    hs512 = jwt.encode({"exp": int(time.time()) + 600}, SECRET, algorithm="HS512")
    assert not authorized(f"Bearer {hs512}", SECRET)
    assert not authorized(None, SECRET) and not authorized("Bearer", SECRET)


def test_opt_out_words_fold_case_accents_and_space() -> None:
    assert fold_text("  Paré ") == "pare" and fold_text("DESCADASTRAR") == "descadastrar"
    assert parse_keywords("PARE, Sair,,stop") == {"pare", "sair", "stop"}
    assert fold_text("Não") == "nao"


def test_ban_codes_parse_and_refuse_garbage() -> None:
    assert parse_codes("402, 403,406") == {402, 403, 406}
    assert parse_codes("") == frozenset()
    with pytest.raises(ValueError, match="not a reason code"):
        parse_codes("403,abc")
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert defaults.ban_codes == {402, 403, 406}
    assert "pare" in defaults.opt_out_words and defaults.webhook_secret is None
