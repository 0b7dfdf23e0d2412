"""The not-on-WhatsApp memory on real PostgreSQL and Redis: a number Evolution reported
not on WhatsApp is asked once; later messages fail at once until the TTL or a forget."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from models.enums import MessageState
from models.policy_store import PolicyStore
from models.views import to_datetime
from tests.support.evolution import T0
from tests.support.stack import Stack, phone
from worker.composition import Pipeline
from worker.countdowns import CountdownBook
from worker.delivery import Result
from worker.not_on_whatsapp import NotOnWhatsAppMemory

DAY = 86_400.0
GHOST = phone(7)  # 5511900070007


def not_on_whatsapp(stack: Stack) -> None:
    """Evolution answers 400 `exists: false` for GHOST and counts every ask."""
    asked: list[str] = []
    normal = stack.evolution.behaviour.pop("a", None)
    assert normal is None

    def handler(request: httpx.Request) -> httpx.Response:
        number = request.read().decode()
        if "5511900070007" in number:
            asked.append(number)
            message = [{"jid": "5511900070007@s.whatsapp.net", "exists": False,
                        "number": "5511900070007"}]  # fmt: skip
            return httpx.Response(
                400, json={"status": 400, "error": "Bad Request", "response": {"message": message}}
            )
        del stack.evolution.behaviour["a"]  # answer as Evolution does for everyone else
        try:
            return stack.evolution(request)
        finally:
            stack.evolution.behaviour["a"] = handler

    stack.evolution.behaviour["a"] = handler
    stack.asked = asked  # type: ignore[attr-defined]


def test_a_number_not_on_whatsapp_is_asked_once(stack: Stack) -> None:
    stack.add_instance("a")
    not_on_whatsapp(stack)
    first = stack.accept(GHOST)
    assert stack.dispatcher.deliver(first).result is Result.FAILED
    for i in range(3):
        later = stack.accept(GHOST, text=f"again {i}")
        assert stack.dispatcher.deliver(later).result is Result.FAILED
        view = stack.res.messages.get(later)
        assert view.state is MessageState.FAILED and view.attempts == 0
        assert "not on WhatsApp (known since" in (view.last_error or "")
    assert len(stack.asked) == 1  # type: ignore[attr-defined]
    assert stack.dispatcher.deliver(stack.accept(phone(1))).result is Result.SENT


def test_the_task_path_fails_a_known_number_without_a_slot(stack: Stack) -> None:
    stack.add_instance("a", hourly=2)
    not_on_whatsapp(stack)
    pipe = Pipeline(stack.intake, stack.dispatcher, stack.sweeper, CountdownBook(stack.redis))
    pipe.send((), {"phone": GHOST, "text": "x"}, task_id="t0")
    for i in range(1, 4):
        assert pipe.send((), {"phone": GHOST, "text": f"x{i}"}, task_id=f"t{i}").result is (
            Result.FAILED
        )
    assert pipe.send((), {"phone": phone(1), "text": "y"}, task_id="t9").result is Result.SENT
    assert len(stack.asked) == 1  # type: ignore[attr-defined]


def test_another_process_learns_it_within_its_check_time(stack: Stack) -> None:
    ticks = [0.0]
    other = NotOnWhatsAppMemory(
        PolicyStore(stack.res.sessions), stack.redis, 30, monotonic=lambda: ticks[0]
    )
    assert other.known_since("5511900070007", T0) is None
    stack.res.not_on_whatsapp.remember("5511900070007", T0, "exists false")
    assert other.known_since("5511900070007", T0) is None  # checked less than a second ago
    ticks[0] += 1.0
    assert other.known_since("5511900070007", T0) is not None
    stack.res.not_on_whatsapp.forget("5511900070007")
    ticks[0] += 1.0
    assert other.known_since("5511900070007", T0) is None


def test_the_memory_expires_after_its_ttl_and_forget_clears_it(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(not_on_whatsapp_ttl_days=2)
    stack.add_instance("a")
    not_on_whatsapp(stack)
    stack.dispatcher.deliver(stack.accept(GHOST))
    stack.set_clock(T0 + 2 * DAY - 60)
    stack.dispatcher.deliver(stack.accept(GHOST, text="b"))
    assert len(stack.asked) == 1  # type: ignore[attr-defined]
    stack.set_clock(T0 + 2 * DAY + 60)
    stack.dispatcher.deliver(stack.accept(GHOST, text="c"))
    assert len(stack.asked) == 2  # type: ignore[attr-defined]
    assert stack.res.not_on_whatsapp.forget("5511900070007") is True
    stack.dispatcher.deliver(stack.accept(GHOST, text="d"))
    assert len(stack.asked) == 3  # type: ignore[attr-defined]


def test_a_ttl_of_zero_turns_the_memory_off(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(not_on_whatsapp_ttl_days=0)
    stack.add_instance("a")
    not_on_whatsapp(stack)
    for i in range(2):
        stack.dispatcher.deliver(stack.accept(GHOST, text=f"m{i}"))
    assert len(stack.asked) == 2  # type: ignore[attr-defined]


def test_a_process_adds_new_finds_without_reloading_everything(stack: Stack) -> None:
    ticks = [0.0]
    store = PolicyStore(stack.res.sessions)
    other = NotOnWhatsAppMemory(store, stack.redis, 30, monotonic=lambda: ticks[0])
    stack.res.not_on_whatsapp.remember("5511900000001", T0, None)
    assert other.known_since("5511900000001", T0) is not None  # first load: everything
    reads: list[object] = []
    original = store.all_not_on_whatsapp

    def counting(since: object) -> object:
        reads.append(since)
        return original(since)  # type: ignore[arg-type]

    store.all_not_on_whatsapp = counting  # type: ignore[method-assign]
    stack.res.not_on_whatsapp.remember("5511900000002", T0 + 60, None)
    ticks[0] += 1.0
    assert other.known_since("5511900000002", T0 + 60) is not None
    assert other.known_since("5511900000001", T0 + 60) is not None
    assert reads == [to_datetime(T0 - 300)]  # the newest it held, less the overlap
    stack.res.not_on_whatsapp.forget("5511900000001")
    ticks[0] += 1.0
    assert other.known_since("5511900000001", T0 + 60) is None  # a forget reloads it all
