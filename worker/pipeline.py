"""The plain objects behind the Celery tasks, built once per process from its resources."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from celery import Celery

from models.message_store import IdempotencyConflict
from worker.celery_app import DELIVER_MESSAGE
from worker.delivery import Delivered, Dispatcher, skipped
from worker.intake import InvalidMessage
from worker.intake_service import POSITIONAL_ORDER, Intake, positional_fields
from worker.resources import Resources, resources
from worker.sweeper import Sweeper


class CeleryScheduler:
    """Runs delivery again later by publishing `zapdispatch.deliver_message` with a countdown."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def schedule(self, message_id: uuid.UUID, countdown_seconds: float) -> None:
        self._app.send_task(
            DELIVER_MESSAGE, args=[str(message_id)], countdown=max(0.0, countdown_seconds)
        )


@dataclass(frozen=True)
class Pipeline:
    intake: Intake
    dispatcher: Dispatcher
    sweeper: Sweeper

    def send(
        self, args: tuple[object, ...], kwargs: Mapping[str, object], *, task_id: str | None = None
    ) -> Delivered:
        """The `send_message` task: validate, then record and deliver in-line (bad input is
        recorded `failed` with the reason).

        Without a producer key, the task id is the idempotency key: a redelivered or retried
        task finds its message instead of recording a second one.
        """
        try:
            fields = {**positional_fields(args), **kwargs}
        except InvalidMessage as exc:  # recorded like any bad input, not left a task error
            fields = {**positional_fields(args[: len(POSITIONAL_ORDER)]), **kwargs}
            return self._rejected(self._keyed(fields, task_id), str(exc))
        fields = self._keyed(fields, task_id)
        try:
            new = self.intake.validated(fields)
        except InvalidMessage as exc:
            return self._rejected(fields, str(exc))
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


def build_pipeline(res: Resources, scheduler: CeleryScheduler) -> Pipeline:
    return Pipeline(
        intake=Intake(res.settings, res.messages, res.limiter),
        dispatcher=Dispatcher(
            res.settings,
            res.messages,
            res.instances,
            res.limiter,
            res.evolution,
            scheduler,
            pauses=res.pauses,
            policy=res.policy,
            memory=res.not_on_whatsapp,
        ),
        sweeper=Sweeper(res.settings, res.sweeps, res.limiter, res.redis, scheduler),
    )


_lock = threading.Lock()
_built: tuple[int, Pipeline] | None = None


def pipeline(app: Celery) -> Pipeline:
    """This process's pipeline; rebuilt when its resources are replaced (tests)."""
    global _built  # noqa: PLW0603 - one pipeline per process, by design
    res = resources()
    with _lock:
        if _built is None or _built[0] != id(res):
            _built = (id(res), build_pipeline(res, CeleryScheduler(app)))
        return _built[1]
