"""SQL for instances and their contacts: registration, routing candidates, status, bans."""

from __future__ import annotations

import functools
import time
import unicodedata
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from models.enums import InstanceStatus
from models.tables import Contact, Instance, InstanceEvent
from models.views import InstanceView, StatusChange


class UnknownInstance(LookupError):
    """No instance has that name."""


class DuplicateInstance(ValueError):
    """An instance with that name already exists."""


def instance_view(row: Instance) -> InstanceView:
    return InstanceView(
        name=row.name,
        phone=row.phone,
        status=row.status,
        hourly_cap=row.hourly_cap,
        daily_cap=row.daily_cap,
        active=row.active,
        consecutive_failures=row.consecutive_failures,
        circuit_opened_at=row.circuit_opened_at,
        last_message_at=row.last_message_at,
        status_changed_at=row.status_changed_at,
        status_reason=row.status_reason,
        warmup_since=row.warmup_started_at or row.created_at,
    )


#: The columns of `InstanceView`, in its field order: routing reads every row for each message,
#: and plain rows cost a fraction of ORM objects (bench/: 1,000 instances).
_VIEW_COLUMNS = (
    Instance.name,
    Instance.phone,
    Instance.status,
    Instance.hourly_cap,
    Instance.daily_cap,
    Instance.active,
    Instance.consecutive_failures,
    Instance.circuit_opened_at,
    Instance.last_message_at,
    Instance.status_changed_at,
    Instance.status_reason,
    func.coalesce(Instance.warmup_started_at, Instance.created_at),
)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _drops_snapshot(
    method: Callable[Concatenate[InstanceStore, _P], _R],
) -> Callable[Concatenate[InstanceStore, _P], _R]:
    """A write to instances: the routing snapshot is dropped once it has committed."""

    def wrapper(self: InstanceStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        finally:
            self.forget_snapshot()

    functools.update_wrapper(wrapper, method)
    return wrapper


#: Longest instance name (the `instances.name` column).
MAX_INSTANCE_NAME_CHARS = 64


class InvalidInstanceName(ValueError):
    """A name that breaks `check_instance_name`'s rule; `str(exc)` says which part."""


def check_instance_name(name: object) -> str:
    """An instance name: 1 to 64 characters, no leading or trailing space, and only printable
    characters: letters, digits, punctuation, symbols and spaces of any script (Unicode
    categories L, M, N, P, S and Zs); no control or format characters, no line breaks
    (they would forge log lines and alerts). Returns the name unchanged."""
    if not isinstance(name, str) or not name:
        raise InvalidInstanceName("instance name must not be empty")
    if len(name) > MAX_INSTANCE_NAME_CHARS:
        raise InvalidInstanceName(
            f"instance name has {len(name)} characters; at most {MAX_INSTANCE_NAME_CHARS}"
        )
    bad = next((ch for ch in name if not _printable(ch)), None)
    if bad is not None:
        raise InvalidInstanceName(
            f"instance name must hold printable characters only, not U+{ord(bad):04X}"
        )
    if name != name.strip():
        raise InvalidInstanceName("instance name must not start or end with a space")
    return name


def _printable(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category[0] in "LMNPS" or category == "Zs"


def validate_caps(hourly_cap: int | None, daily_cap: int | None) -> None:
    """Caps are messages per hour / per day; both must be positive when given."""
    for label, cap in (("hourly", hourly_cap), ("daily", daily_cap)):
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0):
            raise ValueError(f"{label} cap must be a positive integer, got {cap!r}")


#: Reads the routing version (any value; a change means "reload"); None when unknown.
VersionSource = Callable[[], object]


class InstanceStore:
    """The instances table and the contact preferences that point at it."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        snapshot_seconds: float = 0.0,
        version: VersionSource | None = None,
        version_check_seconds: float = 0.1,
    ) -> None:
        self._sessions = sessions
        self._snapshot_seconds = snapshot_seconds
        self._snapshot: tuple[float, tuple[InstanceView, ...]] | None = None
        self._version = version
        self._version_check_seconds = version_check_seconds
        self._seen_version: tuple[float, object] | None = None

    @_drops_snapshot
    def add(
        self,
        name: str,
        phone: str,
        hourly_cap: int,
        daily_cap: int,
        *,
        status: InstanceStatus = InstanceStatus.DISCONNECTED,
    ) -> InstanceView:
        check_instance_name(name)
        validate_caps(hourly_cap, daily_cap)
        row = Instance(
            name=name,
            phone=phone,
            hourly_cap=hourly_cap,
            daily_cap=daily_cap,
            status=status,
            active=True,
            consecutive_failures=0,
        )
        try:
            with self._sessions.begin() as session:
                session.add(row)
                session.flush()
                return instance_view(row)
        except IntegrityError as exc:
            raise DuplicateInstance(f"instance {name!r} already exists") from exc

    def all(self) -> list[InstanceView]:
        with self._sessions() as session:
            rows = session.execute(select(*_VIEW_COLUMNS).order_by(Instance.name))
            return [InstanceView(*row) for row in rows]

    def snapshot(self) -> Sequence[InstanceView]:
        """`all()`, reused for up to `snapshot_seconds` (monotonic) for routing, which reads
        it for every message. Changes made through this store drop it at once; status changes
        announced on the routing version (webhooks, the health check) show within
        `version_check_seconds` (the version is read at most that often); any other change
        made elsewhere shows within `snapshot_seconds`."""
        cached = self._snapshot
        now = time.monotonic()
        if (
            cached is not None
            and now - cached[0] < self._snapshot_seconds
            and not self._version_moved(now)
        ):
            return cached[1]
        if self._version is not None:  # read before the rows: a later bump is not missed
            self._read_version(now)
        fresh = tuple(self.all())
        self._snapshot = (now, fresh)
        return fresh

    def _read_version(self, now: float) -> object:
        try:
            current = self._version() if self._version is not None else None
        except Exception:  # Redis down: routing falls back to the snapshot's own expiry
            current = None
        self._seen_version = (now, current)
        return current

    def _version_moved(self, now: float) -> bool:
        """Whether the routing version changed since it was last read (read only when the
        last read is `version_check_seconds` old; a failed read counts as no change)."""
        seen = self._seen_version
        if self._version is None or (seen and now - seen[0] < self._version_check_seconds):
            return False
        current = self._read_version(now)
        return seen is not None and current is not None and seen[1] != current

    def forget_snapshot(self) -> None:
        """Drop the routing snapshot: the next routing decision reads the instances again
        (after a write through this store, or a claim that found the snapshot out of date)."""
        self._snapshot = None

    def _failing_in_snapshot(self, name: str) -> bool:
        """Whether the snapshot shows `name` with failures a success has just cleared."""
        cached = self._snapshot
        return cached is not None and any(
            v.name == name and (v.consecutive_failures or v.circuit_opened_at is not None)
            for v in cached[1]
        )

    def get(self, name: str) -> InstanceView:
        with self._sessions() as session:
            row = session.scalar(select(Instance).where(Instance.name == name))
            if row is None:
                raise UnknownInstance(f"no instance named {name!r}")
            return instance_view(row)

    def routable(self) -> list[InstanceView]:
        """Active, connected instances (the circuit breaker is applied by the caller): the
        SQL half of `worker.breaker.is_online`, which it must mirror (a test checks)."""
        with self._sessions() as session:
            rows = session.scalars(
                select(Instance)
                .where(Instance.active.is_(True), Instance.status == InstanceStatus.CONNECTED)
                .order_by(Instance.name)
            )
            return [instance_view(r) for r in rows]

    @_drops_snapshot
    def update(
        self,
        name: str,
        *,
        hourly_cap: int | None = None,
        daily_cap: int | None = None,
        active: bool | None = None,
    ) -> InstanceView:
        validate_caps(hourly_cap, daily_cap)
        values = {
            k: v
            for k, v in (("hourly_cap", hourly_cap), ("daily_cap", daily_cap), ("active", active))
            if v is not None
        }
        with self._sessions.begin() as session:
            row = self._locked(session, name)
            for key, value in values.items():
                setattr(row, key, value)
            return instance_view(row)

    @_drops_snapshot
    def restart_warmup(self, name: str, at: datetime) -> InstanceView:
        """Day 1 of the number's warm-up ramp becomes the local day of `at` (e.g. after a
        ban is lifted). Raises UnknownInstance."""
        with self._sessions.begin() as session:
            row = self._locked(session, name)
            row.warmup_started_at = at
            return instance_view(row)

    @_drops_snapshot
    def set_status(
        self,
        name: str,
        status: InstanceStatus,
        reason: str | None,
        now: datetime,
        *,
        observed_at: datetime | None = None,
        sticky_ban: bool = False,
    ) -> StatusChange | None:
        """Record a status change and its event; None when the status did not change, or
        when `observed_at` (when the observation was made; default `now`) is older than the
        observation behind the current status: the newer observation wins. With
        `sticky_ban` (observations, not operators) a banned instance stays banned."""
        observed_at = observed_at or now
        with self._sessions.begin() as session:
            row = self._locked(session, name)
            if row.status == status or (sticky_ban and row.status == InstanceStatus.BANNED):
                return None
            if row.status_observed_at is not None and row.status_observed_at > observed_at:
                return None
            change = StatusChange(name, row.status, status, reason, now)
            row.status, row.status_reason, row.status_changed_at = status, reason, now
            row.status_observed_at = observed_at
            session.add(
                InstanceEvent(
                    instance=name,
                    old_status=change.old.value,
                    new_status=status.value,
                    reason=reason,
                    created_at=now,
                )
            )
            return change

    def ban(self, name: str, reason: str, now: datetime) -> int:
        """Mark banned and drop every contact's preference for it; returns contacts migrated."""
        self.set_status(name, InstanceStatus.BANNED, reason, now)
        return self.migrate_contacts_off(name)

    def migrate_contacts_off(self, name: str) -> int:
        """One statement: contacts on `name` lose their preference (reassigned on next send)."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(Contact)
                .where(Contact.preferred_instance == name)
                .values(preferred_instance=None, preferred_since=None)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def contacts_assigned(self, names: Sequence[str] | None = None) -> dict[str, int]:
        """Contacts whose preferred instance is each name."""
        with self._sessions() as session:
            query = (
                select(Contact.preferred_instance, func.count())
                .where(Contact.preferred_instance.is_not(None))
                .group_by(Contact.preferred_instance)
            )
            if names is not None:
                query = query.where(Contact.preferred_instance.in_(names))
            return {str(n): int(c) for n, c in session.execute(query)}

    def forget_failures_seen(self, name: str) -> None:
        """After a success recorded elsewhere (`MessageStore.mark_sent`): drop the routing
        snapshot if it still shows `name` failing."""
        if self._failing_in_snapshot(name):
            self.forget_snapshot()

    def record_send_success(self, name: str, now: datetime) -> None:
        """A delivered send closes the breaker and stamps last_message_at."""
        with self._sessions.begin() as session:
            session.execute(
                update(Instance)
                .where(Instance.name == name)
                .values(last_message_at=now, consecutive_failures=0, circuit_opened_at=None)
            )
        if self._failing_in_snapshot(name):
            self.forget_snapshot()

    @_drops_snapshot
    def record_send_failure(self, name: str, now: datetime, *, threshold: int) -> int:
        """Count a failed send; (re)open the breaker at `threshold`. Returns the new count."""
        with self._sessions.begin() as session:
            row = self._locked(session, name)
            row.consecutive_failures += 1
            if row.consecutive_failures >= threshold:
                row.circuit_opened_at = now
            return row.consecutive_failures

    @staticmethod
    def _locked(session: Session, name: str) -> Instance:
        row = session.scalar(select(Instance).where(Instance.name == name).with_for_update())
        if row is None:
            raise UnknownInstance(f"no instance named {name!r}")
        return row
