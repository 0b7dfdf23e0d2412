"""The message store's single-statement hot path on real PostgreSQL (models/message_sql.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError

from models.message_store import ClaimOutcome, MessageStore, NewMessage
from models.views import to_datetime
from tests.integration.conftest import T0, Stack, phone
from worker.intake import validate

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
