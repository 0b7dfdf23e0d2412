"""Campaigns on real PostgreSQL and Redis: the producer keyword is stored on every path;
cancel and list."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select, update

from models.campaign_store import CampaignStore
from models.enums import MessageState
from models.message_values import ClaimOutcome
from models.tables import Message
from models.views import to_datetime
from tests.support.evolution import T0
from tests.support.stack import Stack, phone
from worker.api import create_app, deps_from_resources
from worker.composition import Pipeline
from worker.controls import Controls
from worker.countdowns import CountdownBook
from worker.delivery import Result


def stored_campaign(stack: Stack, message_id: uuid.UUID) -> str | None:
    with stack.res.sessions() as s:
        return s.scalar(select(Message.campaign).where(Message.id == message_id))


def test_campaign_is_stored_when_accepted_queued(stack: Stack) -> None:
    message_id = stack.accept(phone(1), campaign="november")
    assert stored_campaign(stack, message_id) == "november"
    assert stack.res.messages.get(message_id).campaign == "november"
    assert stack.res.messages.routing_input(message_id).message.campaign == "november"


def test_campaign_is_stored_when_recorded_already_claimed(stack: Stack) -> None:
    stack.add_instance("a")
    pipe = Pipeline(stack.intake, stack.dispatcher, stack.sweeper, CountdownBook(stack.redis))
    for i in range(3):  # the first teaches the sticky cache; later ones take the fast path
        pipe.send((), {"phone": phone(1), "text": f"m{i}", "campaign": "nov"}, task_id=f"t{i}")
    with stack.res.sessions() as s:
        rows = s.execute(select(Message.state, Message.campaign)).all()
    assert sorted(rows) == [("sent", "nov")] * 3


def test_bad_campaign_through_the_task_is_recorded_failed_with_the_reason(stack: Stack) -> None:
    stack.add_instance("a")
    pipe = Pipeline(stack.intake, stack.dispatcher, stack.sweeper, CountdownBook(stack.redis))
    pipe.send((), {"phone": phone(1), "text": "oi", "campaign": "x" * 101}, task_id="t1")
    with stack.res.sessions() as s:
        row = s.execute(select(Message.state, Message.last_error)).one()
    assert row.state == "failed" and "campaign must have 1..100 characters" in row.last_error
    assert stack.evolution.sent == []


# -- cancel and list ---------------------------------------------------------------------
def controls(stack: Stack) -> Controls:
    return Controls(
        stack.res.pauses, stack.res.instances, stack.res.limiter.now,
        CampaignStore(stack.res.sessions),
    )  # fmt: skip


def test_cancel_turns_queued_and_waiting_into_cancelled_and_nothing_is_sent(
    stack: Stack,
) -> None:
    stack.add_instance("a", hourly=1, daily=100)
    sent = stack.accept(phone(1), campaign="nov")
    stack.dispatcher.deliver(sent)  # takes the only slot of the hour
    counted_down = stack.accept(phone(2), campaign="nov")
    stack.dispatcher.deliver(counted_down)  # requeued with a countdown: still `queued`
    parked = stack.accept(phone(3), campaign="nov", ttl_seconds=86_400)
    stack.res.messages.note_requeue(parked, to_datetime(T0), not_before=to_datetime(T0 + 7200))
    other = stack.accept(phone(4), campaign="dec")
    assert controls(stack).cancel_campaign("nov") == {"campaign": "nov", "cancelled": 2}
    for message_id in (counted_down, parked):
        view = stack.res.messages.get(message_id)
        assert view.state is MessageState.CANCELLED and "cancelled by an operator" in (
            view.last_error or ""
        )
    stack.set_clock(T0 + 7200)
    stack.sweeper.run()
    assert stack.dispatcher.deliver(counted_down).result is Result.SKIPPED  # the countdown fires
    assert stack.dispatcher.deliver(parked).result is Result.SKIPPED
    assert stack.res.messages.get(other).state is MessageState.QUEUED
    assert len(stack.evolution.sent) == 1


def test_a_message_claimed_meanwhile_is_not_cancelled(stack: Stack) -> None:
    stack.add_instance("a")
    message_id = stack.accept(phone(1), campaign="nov")
    claim = stack.res.messages.claim(
        message_id, "a", contact_id=None, seen_preference=None, now=to_datetime(T0)
    )
    assert claim is ClaimOutcome.CLAIMED
    assert controls(stack).cancel_campaign("nov")["cancelled"] == 0
    assert stack.res.messages.get(message_id).state is MessageState.SENDING


def test_cancel_racing_claims_each_message_goes_exactly_one_way(stack: Stack) -> None:
    stack.add_instance("a")
    ids = [stack.accept(phone(i), campaign="nov") for i in range(30)]
    claimed: list[uuid.UUID] = []

    def claim_all() -> None:
        for i in ids:
            outcome = stack.res.messages.claim(
                i, "a", contact_id=None, seen_preference=None, now=to_datetime(T0)
            )
            if outcome is ClaimOutcome.CLAIMED:
                claimed.append(i)

    thread = threading.Thread(target=claim_all)
    thread.start()
    cancelled = controls(stack).cancel_campaign("nov")["cancelled"]
    thread.join()
    assert cancelled + len(claimed) == 30
    states = stack.res.messages.count_by_state()
    assert states.get("cancelled", 0) == cancelled and states.get("sending", 0) == len(claimed)


def test_campaigns_list_counts_by_state_and_receipt(stack: Stack) -> None:
    stack.add_instance("a")
    for i in range(3):
        stack.dispatcher.deliver(stack.accept(phone(i), campaign="nov"))
    stack.accept(phone(9), campaign="nov")
    stack.accept(phone(8), campaign="dec")
    stack.accept(phone(7))  # no campaign: not listed
    with stack.res.sessions.begin() as s:
        first_sent = s.scalars(select(Message.id).where(Message.state == "sent").limit(1)).one()
        s.execute(update(Message).where(Message.id == first_sent).values(receipt="delivered"))
    c = controls(stack)
    c.pause(campaign="dec")
    listed = {row["campaign"]: row for row in c.campaigns()}
    assert list(listed) == ["dec", "nov"]
    nov = listed["nov"]
    assert nov["total"] == 4 and nov["by_state"]["sent"] == 3 and nov["by_state"]["queued"] == 1
    assert nov["by_state"]["cancelled"] == 0 and nov["receipts"] == {"delivered": 1}
    assert nov["paused"] is False and listed["dec"]["paused"] is True
    assert listed["dec"]["paused_since"] is not None and nov["first_at"] is not None


def test_campaign_api_lists_and_cancels_behind_the_token(stack: Stack) -> None:
    stack.add_instance("a")
    stack.accept(phone(1), campaign="nov")
    settings = stack.res.settings.model_copy(update={"api_token": SecretStr("tok")})
    deps = deps_from_resources(stack.res)
    client = TestClient(create_app(replace(deps, settings=settings)))
    assert client.get("/campaigns").status_code == 401
    auth = {"Authorization": "Bearer tok"}
    listed = client.get("/campaigns", headers=auth).json()["campaigns"]
    assert [(r["campaign"], r["by_state"]["queued"]) for r in listed] == [("nov", 1)]
    done = client.post("/campaigns/nov/cancel", headers=auth)
    assert done.status_code == 200 and done.json() == {"campaign": "nov", "cancelled": 1}
    assert client.post("/campaigns/nov/cancel", headers=auth).json()["cancelled"] == 0
    assert client.post(f"/campaigns/{'x' * 101}/cancel", headers=auth).status_code == 422
    listed = client.get("/campaigns", headers=auth).json()["campaigns"]
    assert listed[0]["by_state"]["cancelled"] == 1
