"""The composition root: the plain objects behind the Celery tasks (`Pipeline`: intake,
dispatcher, sweeper, countdowns), wired once per process from its resources. The only
module that knows every collaborator; the tasks call `pipeline(app)` and nothing else."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from celery import Celery

from models.contact_store import ContactStore
from models.message_store import IdempotencyConflict, MessageStore
from models.views import to_datetime
from worker.broker.held import HeldMessages
from worker.celery_app import DELIVER_MESSAGE
from worker.countdowns import CountdownBook
from worker.delivery import Delivered, Dispatcher, skipped
from worker.heartbeat import Heartbeats
from worker.intake import Intake
from worker.message_input import POSITIONAL_ORDER, InvalidMessage, call_fields, positional_fields
from worker.optout import OptOutGate
from worker.resources import Resources, resources
from worker.sweeper import DeadWorkers, Sweeper


class CeleryScheduler:
    """Runs delivery again later by publishing `zapdispatch.deliver_message` with a countdown;
    while the pool holds as many countdown tasks as `book` allows, the message is parked in
    PostgreSQL until then instead (the sweep wakes it)."""

    def __init__(
        self,
        app: Celery,
        book: CountdownBook,
        messages: MessageStore,
        clock: Callable[[], float],
    ) -> None:
        self._app = app
        self._book = book
        self._messages = messages
        self._clock = clock

    def schedule(self, message_id: uuid.UUID, countdown_seconds: float) -> None:
        countdown = max(0.0, countdown_seconds)
        if countdown > 0:
            now = self._clock()
            if not self._book.admit(message_id, now + countdown, now):
                self._messages.note_requeue(
                    message_id, to_datetime(now), not_before=to_datetime(now + countdown)
                )
                return
        self._app.send_task(DELIVER_MESSAGE, args=[str(message_id)], countdown=countdown)


@dataclass(frozen=True)
class Pipeline:
    intake: Intake
    dispatcher: Dispatcher
    sweeper: Sweeper
    countdowns: CountdownBook

    def deliver(self, message_id: uuid.UUID) -> Delivered:
        """The `deliver_message` task: its countdown (if any) is over; deliver."""
        self.countdowns.done(message_id)
        return self.dispatcher.deliver(message_id)

    def send(
        self, args: tuple[object, ...], kwargs: Mapping[str, object], *, task_id: str | None = None
    ) -> Delivered:
        """The `send_message` task: validate, then record and deliver in-line (bad input is
        recorded `failed` with the reason).

        Without a producer key, the task id is the idempotency key: a redelivered or retried
        task finds its message instead of recording a second one.
        """
        try:
            fields = call_fields(args, kwargs)
        except InvalidMessage as exc:  # recorded like any bad input, not left a task error
            fields = {**positional_fields(args[: len(POSITIONAL_ORDER)]), **kwargs}
            return self._rejected(self._keyed(fields, task_id), str(exc))
        fields = self._keyed(fields, task_id)
        try:
            new = self.intake.validated(fields)
        except InvalidMessage as exc:
            return self._rejected(fields, str(exc))
        if self.intake.opted_out(new):
            return skipped(self.intake.record_opted_out(new))
        try:
            return self.dispatcher.deliver_new(new)
        except IdempotencyConflict as exc:
            return skipped(self.intake.record_conflict(fields, exc))

    @staticmethod
    def _keyed(fields: dict[str, object], task_id: str | None) -> dict[str, object]:
        if fields.get("idempotency_key") is None and task_id:
            fields["idempotency_key"] = f"celery-task:{task_id}"
        return fields

    def _rejected(self, fields: Mapping[str, object], problem: str) -> Delivered:
        return skipped(self.intake.record_rejection(fields, problem))


def build_pipeline(res: Resources, app: Celery, held: HeldMessages | None = None) -> Pipeline:
    """With `held`, the sweep also re-drives what dead worker processes held."""
    book = CountdownBook(res.redis)
    scheduler = CeleryScheduler(app, book, res.messages, res.limiter.now)
    heartbeats = Heartbeats(res.redis, res.settings.worker_dead_after_seconds)
    optouts = OptOutGate(ContactStore(res.sessions))
    return Pipeline(
        intake=Intake(res.settings, res.messages, res.limiter, optouts),
        dispatcher=Dispatcher(
            res.settings,
            res.messages,
            res.instances,
            res.limiter,
            res.evolution,
            scheduler,
            optouts=optouts,
            pauses=res.pauses,
            policy=res.policy,
            memory=res.not_on_whatsapp,
        ),
        sweeper=Sweeper(
            res.settings,
            res.sweeps,
            res.limiter,
            res.redis,
            scheduler,
            dead_workers=DeadWorkers(heartbeats, held.restore) if held is not None else None,
        ),
        countdowns=book,
    )


def pipeline(app: Celery) -> Pipeline:
    """This process's pipeline, built once on its resources (replaced with them)."""
    res = resources()
    return res.service("pipeline", lambda: build_pipeline(res, app, HeldMessages(app)))
