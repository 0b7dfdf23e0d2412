"""The message store's single-statement hot path on real PostgreSQL (models/message_sql.py)."""

from __future__ import annotations

import socket
import threading
import uuid
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError

from models import message_sql
from models.db import make_statement_engine
from models.message_store import (
    Accepted,
    ClaimOutcome,
    IdempotencyConflict,
    MessageStore,
    NewMessage,
)
from models.statements import Statements
from models.views import to_datetime
from tests.support.evolution import T0
from tests.support.stack import Stack, phone
from worker.message_input import rejection, validate

AT = to_datetime(T0)


def new_message(i: int, contact: str = "doc", **fields: object) -> NewMessage:
    return validate(
        {"phone": phone(i), "text": f"message {i}", "contact_id": contact, **fields},
        now=T0,
        default_ttl_seconds=3600,
    )


def test_accept_hands_back_what_routing_would_read(stack: Stack) -> None:
    store = stack.res.messages
    stack.add_instance("a")
    first = store.accept(new_message(1))
    assert first.created and first.routing is not None
    assert first.routing == store.routing_input(first.id)
    assert first.routing.preferred_instance is None  # a new contact

    assert store.claim(first.id, "a", contact_id="doc", seen_preference=None, now=AT) == (
        ClaimOutcome.CLAIMED
    )
    second = store.accept(new_message(2))
    assert second.routing is not None
    assert second.routing.preferred_instance == "a"
    assert second.routing == store.routing_input(second.id)


def test_accept_again_finds_the_first_message(stack: Stack) -> None:
    store = stack.res.messages
    keyed = new_message(1, idempotency_key="k-1")
    assert store.accept(keyed).created
    again = store.accept(new_message(1, idempotency_key="k-1"))
    assert (again.id, again.created, again.routing) == (keyed.id, False, None)
    # The same NewMessage twice: a statement run again after its first run committed and
    # only the answer was lost. It is still this call's message, so the caller publishes it.
    unkeyed = new_message(2)
    assert store.accept(unkeyed).created
    repeat = store.accept(unkeyed)
    assert (repeat.id, repeat.created, repeat.routing) == (unkeyed.id, True, None)


def test_a_moved_preference_is_not_kept_without_its_claim(stack: Stack) -> None:
    store = stack.res.messages
    stack.add_instance("a")
    stack.add_instance("b")
    message = store.accept(new_message(1))
    assert store.claim(message.id, "a", contact_id="doc", seen_preference=None, now=AT) == (
        ClaimOutcome.CLAIMED
    )
    # A second worker holding the same (already claimed) message tries to move it to b.
    outcome = store.claim(message.id, "b", contact_id="doc", seen_preference="a", now=AT)
    assert outcome is ClaimOutcome.NOT_PENDING
    assert store.routing_input(message.id).preferred_instance == "a"


def test_a_claim_on_a_stale_preference_is_refused(stack: Stack) -> None:
    store = stack.res.messages
    stack.add_instance("a")
    stack.add_instance("b")
    first, second = store.accept(new_message(1)), store.accept(new_message(2))
    store.claim(first.id, "a", contact_id="doc", seen_preference=None, now=AT)
    # `second` was routed while the contact had no preference yet.
    outcome = store.claim(second.id, "b", contact_id="doc", seen_preference=None, now=AT)
    assert outcome is ClaimOutcome.PREFERENCE_CHANGED
    assert store.get(second.id).state == "queued"


def sent_through(stack: Stack, instance: str, i: int, at_seconds: float) -> None:
    store = stack.res.messages
    message = store.accept(new_message(i))
    at = AT + timedelta(seconds=at_seconds)
    seen = message.routing.preferred_instance if message.routing else None
    store.claim(message.id, instance, contact_id="doc", seen_preference=seen, now=at)
    assert store.mark_sent(message.id, f"3EB0{i:04d}", at, instance=instance)


def test_a_send_closes_the_breaker_and_stamps_the_instance_to_the_second(stack: Stack) -> None:
    stack.add_instance("a")
    for _ in range(5):
        stack.res.instances.record_send_failure("a", AT, threshold=3)
    sent_through(stack, "a", 1, 0.0)
    after_first = stack.res.instances.get("a")
    assert (after_first.consecutive_failures, after_first.circuit_opened_at) == (0, None)
    assert after_first.last_message_at == AT

    sent_through(stack, "a", 2, 0.5)  # within the second: the row is left alone
    assert stack.res.instances.get("a").last_message_at == AT
    sent_through(stack, "a", 3, 2.0)
    assert stack.res.instances.get("a").last_message_at == AT + timedelta(seconds=2)


def kill_other_connections(stack: Stack) -> int:
    """Terminate every server connection to the test database but a fresh one of our own."""
    killer = create_engine(stack.res.settings.database_url)
    try:
        with killer.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
            )
    finally:
        killer.dispose()


def count_invalidations(engine: Engine) -> list[object]:
    seen: list[object] = []
    event.listen(engine.pool, "invalidate", lambda conn, record, exc: seen.append(exc))
    return seen


def test_a_dead_pooled_connection_is_replaced_without_an_error(stack: Stack) -> None:
    """The statement engine has no pre-ping; a server-side restart of its connections must
    still not reach the caller (the store runs the statement again on a fresh one)."""
    store = stack.res.messages
    store.accept(new_message(1))  # the pool now holds a connection
    invalidated = count_invalidations(stack.res.statements)
    assert kill_other_connections(stack) >= 1
    assert store.accept(new_message(2)).created
    assert invalidated, "the dead connection was never used: the test proves nothing"


def test_a_claim_is_not_run_twice_on_a_dead_connection(stack: Stack) -> None:
    """A claim whose answer might have been lost raises instead (the task retries)."""
    store = stack.res.messages
    stack.add_instance("a")
    message = store.accept(new_message(1))
    store.claim(message.id, "a", contact_id="doc", seen_preference=None, now=AT)
    second = store.accept(new_message(2))
    assert kill_other_connections(stack) >= 1
    with pytest.raises(DBAPIError):
        store.claim(second.id, "a", contact_id="doc", seen_preference="a", now=AT)
    assert store.get(second.id).state == "queued"  # the dead connection never sent it
    outcome = store.claim(second.id, "a", contact_id="doc", seen_preference="a", now=AT)
    assert outcome is ClaimOutcome.CLAIMED  # the pool is fresh again


def test_a_send_recorded_without_an_instance_stamps_none(stack: Stack) -> None:
    store = stack.res.messages
    stack.add_instance("a")
    message = store.accept(new_message(1))
    store.claim(message.id, "a", contact_id="doc", seen_preference=None, now=AT)
    assert store.mark_sent(message.id, "3EB0", AT)
    assert not store.mark_sent(message.id, "3EB0", AT)  # only `sending` moves
    assert stack.res.instances.get("a").last_message_at is None


def test_the_store_needs_no_statement_engine_of_its_own(stack: Stack) -> None:
    """Built from sessions alone (API, CLI, tests), it runs its statements in autocommit."""
    store = MessageStore(stack.res.sessions)
    accepted = store.accept(new_message(1))
    assert stack.res.messages.get(accepted.id).state == "queued"


# -- accept_claiming: recorded and claimed in one statement ------------------------------------


def contact_row(stack: Stack, contact: str = "doc") -> tuple[object, object]:
    with stack.res.engine.connect() as conn:
        row = conn.execute(
            text("SELECT preferred_instance, preferred_since FROM contacts WHERE id = :c"),
            {"c": contact},
        ).one()
    return row[0], row[1]


def test_a_new_contact_is_recorded_claimed_and_made_sticky(stack: Stack) -> None:
    store = stack.res.messages
    stack.add_instance("a")
    new = new_message(1)
    accepted = store.accept_claiming(new, "a", seen=None)
    assert accepted.created and accepted.state == "sending"
    assert accepted.routing is not None and accepted.routing.preferred_instance == "a"
    stored = store.get(new.id)
    assert (stored.state, stored.instance, stored.attempts) == ("sending", "a", 1)
    assert accepted.routing.message == stored
    assert contact_row(stack) == ("a", AT)


def test_a_sticky_contact_is_claimed_without_rewriting_its_row(stack: Stack) -> None:
    store = stack.res.messages
    stack.add_instance("a")
    store.accept_claiming(new_message(1), "a", seen=None)
    later = validate(
        {"phone": phone(1), "text": "again", "contact_id": "doc"},
        now=T0 + 60,
        default_ttl_seconds=3600,
    )
    assert store.accept_claiming(later, "a", seen="a").state == "sending"
    assert contact_row(stack) == ("a", AT)  # preferred_since untouched


def test_a_fallback_moves_the_preference_with_the_claim(stack: Stack) -> None:
    store = stack.res.messages
    stack.add_instance("a")
    stack.add_instance("b")
    store.accept_claiming(new_message(1), "a", seen=None)
    moved = store.accept_claiming(new_message(2), "b", seen="a")
    assert moved.state == "sending" and store.get(moved.id).instance == "b"
    assert contact_row(stack)[0] == "b"


def test_a_stale_preference_records_the_message_queued_with_the_real_one(stack: Stack) -> None:
    store = stack.res.messages
    stack.add_instance("a")
    stack.add_instance("b")
    store.accept_claiming(new_message(1), "a", seen=None)
    stale = store.accept_claiming(new_message(2), "b", seen=None)  # routed as a new contact
    assert stale.created and stale.state == "queued"
    assert stale.routing is not None and stale.routing.preferred_instance == "a"
    assert store.get(stale.id).instance is None
    assert contact_row(stack)[0] == "a"
    # ... and a sticky route that no longer holds is not claimed either.
    store.accept_claiming(new_message(3), "b", seen="a")
    assert store.accept_claiming(new_message(4), "a", seen="a").state == "queued"


def test_of_two_concurrent_first_messages_only_the_first_is_claimed(stack: Stack) -> None:
    """The first statement holds the new contact's row uncommitted; the second, routed to
    another instance on the same "new contact" view, waits for it and must then refuse."""
    store = stack.res.messages
    stack.add_instance("a")
    stack.add_instance("b")
    first, second = new_message(1), new_message(2)
    params = {
        "id": first.id, "contact_id": "doc", "phone": first.phone, "text": first.text,
        "content_hash": first.content_hash, "idempotency_key": None,
        "expires_at": first.expires_at, "now": AT, "instance": "a", "seen": None,
        "claimed_at": AT,
        "claimant": "holder:1:test",
        "campaign": None,
    }  # fmt: skip
    url = stack.res.settings.database_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url) as holder:
        row = holder.execute(message_sql.ACCEPT_CLAIMING, params).fetchone()
        assert row is not None and row[1] is True  # claimed, not committed yet
        outcome: list[object] = []
        waiter = threading.Thread(
            target=lambda: outcome.append(store.accept_claiming(second, "b", seen=None))
        )
        waiter.start()
        waiter.join(1.0)
        assert waiter.is_alive(), "the second statement should wait on the contact row"
        holder.commit()
    waiter.join(10)
    [accepted] = outcome
    assert isinstance(accepted, Accepted)
    assert accepted.state == "queued"
    assert accepted.routing is not None and accepted.routing.preferred_instance == "a"
    assert contact_row(stack)[0] == "a"


def test_an_idempotency_key_seen_before_claims_nothing(stack: Stack) -> None:
    store = stack.res.messages
    stack.add_instance("a")
    first = store.accept_claiming(new_message(1, idempotency_key="k"), "a", seen=None)
    again = store.accept_claiming(new_message(1, idempotency_key="k"), "a", seen="a")
    assert (again.id, again.created, again.routing) == (first.id, False, None)
    with pytest.raises(IdempotencyConflict):
        store.accept_claiming(new_message(2, idempotency_key="k"), "a", seen="a")
    assert store.count_by_state() == {"sending": 1}


def test_driver_errors_keep_sqlalchemy_s_shape(stack: Stack) -> None:
    """The hot statements run on psycopg's cursor (models/statements.py); callers (the
    tasks' retries, `_record_sent`) still see SQLAlchemy's exceptions."""
    statements = Statements(stack.res.statements)
    with pytest.raises(ProgrammingError) as caught:
        statements.first("SELECT no_such_column FROM messages", {})
    assert not caught.value.connection_invalidated
    assert isinstance(caught.value.orig, psycopg.errors.UndefinedColumn)
    with pytest.raises(IntegrityError):
        statements.first("INSERT INTO contacts (id, phone) VALUES (NULL, '1')", {})
    assert statements.first("SELECT 1", {}) == (1,)  # the connection is still fine


def test_an_unreachable_server_is_sqlalchemy_s_operational_error(stack: Stack) -> None:
    """What the tasks retry on (tasks/messages.py) and `_record_sent` waits out: a raw
    psycopg error here would fail the task, or leave a delivered message `sending`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    nowhere = make_statement_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/x")
    try:
        with pytest.raises(OperationalError) as caught:
            Statements(nowhere).first("SELECT 1", {})
        assert caught.value.connection_invalidated
        with pytest.raises(OperationalError):
            MessageStore(stack.res.sessions, nowhere).mark_sent(uuid.uuid4(), "3EB0", AT)
    finally:
        nowhere.dispose()


def test_a_rejection_of_text_postgresql_cannot_hold_is_recorded(stack: Stack) -> None:
    fields = {"phone": "55\x00", "text": "nul \x00 and \ud800", "idempotency_key": "k\x00"}
    recorded = stack.res.messages.reject(rejection(fields, "text contains a NUL", now=T0))
    row = stack.res.messages.get(recorded.id)
    assert row.state == "failed" and row.last_error == "text contains a NUL"
    assert row.text == "nul \\x00 and \\ud800"
