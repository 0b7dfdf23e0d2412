"""Replies and opt-outs from `messages.upsert`, and the opt-out gate at intake and delivery,
on real PostgreSQL and Redis (Evolution faked by the stack's MockTransport)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

from models.contact_store import ContactStore
from models.enums import MessageState
from models.tables import Contact, Message
from tests.support.evolution import T0
from tests.support.stack import Stack
from worker.api.deps import webhook_service
from worker.composition import Pipeline
from worker.countdowns import CountdownBook
from worker.delivery import Dispatcher, Result
from worker.intake import Intake
from worker.optout import OptOutGate
from worker.webhooks.events import parse_envelope
from worker.webhooks.service import WebhookService

PHONE = "5511999998888"
AT = datetime.fromtimestamp(T0, tz=UTC)


def upsert(text: str, jid: str = f"{PHONE}@s.whatsapp.net", instance: str = "b") -> Any:
    """`messages.upsert` data of an inbound text (prepareMessage, v2.3.7)."""
    return parse_envelope(
        {
            "event": "messages.upsert",
            "instance": instance,
            "data": {
                "key": {"remoteJid": jid, "fromMe": False, "id": "3A0000"},
                "pushName": "Dr. X",
                "status": "DELIVERY_ACK",
                "message": {"conversation": text},
                "messageType": "conversation",
                "messageTimestamp": int(T0),
                "instanceId": "c1",
                "source": "android",
            },
        }
    )


def service(stack: Stack) -> WebhookService:
    return webhook_service(stack.res, lambda migrated: None)


def contact(engine: Engine, contact_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(Contact).where(Contact.id == contact_id)).one_or_none()


@pytest.fixture
def pool(stack: Stack) -> Stack:
    stack.add_instance("a")
    stack.add_instance("b")
    return stack


def gated(stack: Stack) -> tuple[Intake, Dispatcher, Pipeline]:
    gate = OptOutGate(ContactStore(stack.res.sessions), refresh_seconds=0.0)
    s = stack.res.settings
    intake = Intake(s, stack.res.messages, stack.res.limiter, gate)
    dispatcher = Dispatcher(
        s,
        stack.res.messages,
        stack.res.instances,
        stack.res.limiter,
        stack.res.evolution,
        stack.scheduler,
        optouts=gate,
    )
    return (
        intake,
        dispatcher,
        Pipeline(intake, dispatcher, stack.sweeper, CountdownBook(stack.redis)),
    )


def test_a_reply_pins_the_contact_to_the_number_it_wrote_to(pool: Stack, engine: Engine) -> None:
    pipeline = gated(pool)[2]
    pipeline.send((), {"phone": PHONE, "text": "oi", "contact_id": "doc-1"})
    first = contact(engine, "doc-1")
    assert first.preferred_instance in ("a", "b") and first.last_reply_at is None
    other = "a" if first.preferred_instance == "b" else "b"
    answer = service(pool).handle(upsert("Bom dia", instance=other))
    assert answer.value == "reply"
    pinned = contact(engine, "doc-1")
    assert pinned.preferred_instance == other and pinned.last_reply_at is not None
    pool.set_clock(T0 + 60)
    pipeline.send((), {"phone": PHONE, "text": "de novo", "contact_id": "doc-1"})
    assert pool.evolution.sent[-1]["instance"] == other


def test_a_reply_from_an_unknown_phone_creates_its_contact(pool: Stack, engine: Engine) -> None:
    service(pool).handle(upsert("oi"))
    created = contact(engine, PHONE)
    assert created.preferred_instance == "b" and created.phone == PHONE


def test_a_jid_without_the_ninth_digit_finds_the_contact(pool: Stack, engine: Engine) -> None:
    _, _, pipeline = gated(pool)
    pipeline.send((), {"phone": PHONE, "text": "oi", "contact_id": "doc-1"})
    service(pool).handle(upsert("oi", jid="551199998888@s.whatsapp.net", instance="b"))
    assert contact(engine, "doc-1").preferred_instance == "b"
    assert contact(engine, "551199998888") is None


@pytest.mark.parametrize("word", ["PARE", " pare ", "Paré", "stop", "DESCADASTRAR"])
def test_an_opt_out_word_opts_out_and_nothing_is_sent_after(
    pool: Stack, engine: Engine, word: str
) -> None:
    _, _, pipeline = gated(pool)
    pipeline.send((), {"phone": PHONE, "text": "oi", "contact_id": "doc-1"})
    sent_before = len(pool.evolution.sent)
    assert service(pool).handle(upsert(word)).value == "opted_out"
    assert contact(engine, "doc-1").opted_out_at is not None

    by_id = pipeline.send((), {"phone": "+55 11 90000-0001", "text": "x", "contact_id": "doc-1"})
    by_phone = pipeline.send((), {"phone": PHONE, "text": "y", "contact_id": "someone-else"})
    assert by_id.result is Result.SKIPPED and by_phone.result is Result.SKIPPED
    with engine.connect() as conn:
        rows = conn.execute(
            select(Message.state, Message.last_error).where(Message.text.in_(["x", "y"]))
        ).all()
    assert len(rows) == 2
    for state, error in rows:
        assert state is MessageState.FAILED and error.startswith("opted out")
    assert len(pool.evolution.sent) == sent_before


def test_a_word_inside_a_sentence_does_not_opt_out(pool: Stack, engine: Engine) -> None:
    assert service(pool).handle(upsert("não pare de mandar")).value == "reply"
    assert contact(engine, PHONE).opted_out_at is None


def test_messages_waiting_when_the_contact_opts_out_are_not_sent(pool: Stack) -> None:
    intake, dispatcher, _ = gated(pool)
    waiting = intake.accept({"phone": PHONE, "text": "oi", "contact_id": "doc-1"})
    ContactStore(pool.res.sessions).set_opted_out([PHONE], AT)
    delivered = dispatcher.deliver(waiting.id)
    assert delivered.result is Result.FAILED
    assert (pool.res.messages.get(waiting.id).last_error or "").startswith("opted out")
    assert pool.evolution.sent == []


def test_enqueue_records_an_opted_out_message_failed(pool: Stack) -> None:
    intake, _, _ = gated(pool)
    ContactStore(pool.res.sessions).set_opted_out([PHONE], AT)
    accepted = intake.accept({"phone": PHONE, "text": "oi", "idempotency_key": "k1"})
    assert accepted.state is MessageState.FAILED
    again = intake.accept({"phone": PHONE, "text": "oi", "idempotency_key": "k1"})
    assert again.id == accepted.id and again.state is MessageState.FAILED


def test_opt_in_sends_again(pool: Stack) -> None:
    intake, dispatcher, _ = gated(pool)
    store = ContactStore(pool.res.sessions)
    store.set_opted_out([PHONE], AT)
    store.set_opted_out([PHONE], None)
    accepted = intake.accept({"phone": PHONE, "text": "oi"})
    assert dispatcher.deliver(accepted.id).result is Result.SENT


def test_the_gate_reloads_after_its_refresh_time(pool: Stack) -> None:
    ticks = [0.0]
    gate = OptOutGate(ContactStore(pool.res.sessions), monotonic=lambda: ticks[0])
    assert not gate.blocks("doc-1", PHONE)
    ContactStore(pool.res.sessions).set_opted_out([PHONE], AT)
    assert not gate.blocks("doc-1", PHONE)  # cached
    ticks[0] = 1.0
    assert gate.blocks("doc-1", PHONE) and gate.blocks(None, PHONE)
    assert not gate.blocks("doc-2", "5511900000000")
