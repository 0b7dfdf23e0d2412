"""`zapdispatch up`: run the whole system on one machine, as child processes.

Starts the Evolution simulator (inst-a, inst-b, inst-c) when EVOLUTION_API_URL is not set,
registers those instances (connected) if missing, then `celery -A worker worker`, `beat`,
`flower` and the status API. Output is prefixed with the child's name. Ctrl-C or SIGTERM
stops every child (SIGTERM, then SIGKILL of its process group after a grace period); if a
child dies on its own, the others are stopped too and the exit status is 1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from config import Settings
from models.enums import InstanceStatus
from models.instance_store import DuplicateInstance, InstanceStore
from worker.resources import build_resources

SIMULATED_INSTANCES = ("inst-a", "inst-b", "inst-c")
LOOPBACK = "127.0.0.1"
#: How long a child gets to stop after SIGTERM before its process group is killed (seconds).
STOP_GRACE_SECONDS = 15.0
#: How long to wait for the simulator to accept connections (seconds).
SIMULATOR_START_SECONDS = 20.0
POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class Ports:
    api: int
    flower: int
    simulator: int


@dataclass(frozen=True, slots=True)
class ChildSpec:
    name: str
    argv: list[str]


def wants_simulator(settings: Settings) -> bool:
    """True when EVOLUTION_API_URL came from neither the environment nor `.env`."""
    return "evolution_api_url" not in settings.model_fields_set


def simulator_url(ports: Ports) -> str:
    return f"http://{LOOPBACK}:{ports.simulator}"


def child_env(settings: Settings, ports: Ports, base: dict[str, str]) -> dict[str, str]:
    """The children's environment: ours, plus what they must agree on."""
    env = {
        **base,
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
    }
    if wants_simulator(settings):
        env["EVOLUTION_API_URL"] = simulator_url(ports)
    if settings.flower_basic_auth is not None:
        env["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.get_secret_value()
    return env


def child_specs(settings: Settings, ports: Ports, state_dir: Path) -> list[ChildSpec]:
    """What to start, in order (the simulator first, the API last)."""
    py, celery = sys.executable, [sys.executable, "-m", "celery", "-A", "worker"]
    specs = [
        ChildSpec("worker", [*celery, "worker", "--loglevel=INFO", "--concurrency=2"]),
        ChildSpec(
            "beat",
            [*celery, "beat", "--loglevel=INFO", f"--schedule={state_dir / 'celerybeat-schedule'}"],
        ),
        ChildSpec("flower", [*celery, "flower", f"--address={LOOPBACK}", f"--port={ports.flower}"]),
        ChildSpec(
            "api", [py, "-m", "worker.cli", "api", "--host", LOOPBACK, "--port", str(ports.api)]
        ),
    ]
    if wants_simulator(settings):
        simulator = ChildSpec(
            "simulator",
            [
                py,
                "-m",
                "worker.cli",
                "simulator",
                "--host",
                LOOPBACK,
                "--port",
                str(ports.simulator),
                "--instances",
                ",".join(SIMULATED_INSTANCES),
            ],
        )
        specs.insert(0, simulator)
    return specs


def register_simulated_instances(
    store: InstanceStore, settings: Settings, now: datetime
) -> list[str]:
    """Add inst-a/b/c with the default caps if missing and mark them connected (the health
    check keeps them in sync afterwards); an operator's ban is left alone. Returns the names
    added."""
    added = []
    for index, name in enumerate(SIMULATED_INSTANCES, start=1):
        try:
            store.add(
                name,
                f"55119000000{index:02d}",
                settings.default_hourly_cap,
                settings.default_daily_cap,
                status=InstanceStatus.CONNECTED,
            )
            added.append(name)
        except DuplicateInstance:
            if store.get(name).status is not InstanceStatus.BANNED:
                store.set_status(name, InstanceStatus.CONNECTED, "zapdispatch up (simulator)", now)
    return added


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """True once something accepts TCP connections on host:port, False after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(1.0)
            if sock.connect_ex((host, port)) == 0:
                return True
        time.sleep(POLL_SECONDS)
    return False


class Child:
    """One running child in its own session, its output copied with a name prefix."""

    def __init__(self, spec: ChildSpec, env: dict[str, str], out: Output) -> None:
        self.name = spec.name
        # argv is built by child_specs from our own interpreter and fixed arguments.
        self.proc = subprocess.Popen(  # noqa: S603
            spec.argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        self._pump = threading.Thread(
            target=out.copy, args=(self.name, self.proc.stdout), daemon=True
        )
        self._pump.start()

    def stop(self, grace: float) -> int:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL the whole process group."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        kill_group(self.proc.pid)
        code = self.proc.wait()
        self._pump.join(timeout=2)
        return code


def kill_group(pgid: int) -> None:
    """SIGKILL anything left in a child's process group (e.g. orphaned pool processes)."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class Output:
    """Serialises prefixed lines from every child onto one stream."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.width = 9

    def say(self, name: str, line: str) -> None:
        with self._lock:
            self._stream.write(f"{name:<{self.width}}| {line.rstrip()}\n")
            self._stream.flush()

    def copy(self, name: str, pipe: IO[bytes]) -> None:
        for raw in iter(pipe.readline, b""):
            self.say(name, raw.decode(errors="replace"))
        pipe.close()


@contextmanager
def stop_requested() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM for the duration of the block."""
    event = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        event.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def supervise(children: Sequence[Child], stop: threading.Event, out: Output) -> int:
    """Wait for a stop request (0) or for a child to die on its own (1)."""
    while not stop.wait(POLL_SECONDS):
        for child in children:
            code = child.proc.poll()
            if code is not None:
                out.say("up", f"{child.name} exited with status {code}; stopping the rest")
                return 1
    out.say("up", "stopping")
    return 0


def stop_all(children: Sequence[Child], out: Output) -> None:
    """Stop in reverse start order (the API first, the simulator last)."""
    for child in reversed(children):
        code = child.stop(STOP_GRACE_SECONDS)
        out.say("up", f"{child.name} (pid {child.proc.pid}) stopped, status {code}")


def start_children(
    specs: Sequence[ChildSpec], env: dict[str, str], ports: Ports, out: Output
) -> list[Child]:
    children: list[Child] = []
    for spec in specs:
        children.append(Child(spec, env, out))
        out.say("up", f"started {spec.name} (pid {children[-1].proc.pid})")
        if spec.name == "simulator" and not wait_for_port(
            LOOPBACK, ports.simulator, SIMULATOR_START_SECONDS
        ):
            out.say("up", "the simulator did not start listening")
            break
    return children


def prepare(settings: Settings, out: Output) -> None:
    """Register the simulated instances when the simulator is ours."""
    if not wants_simulator(settings):
        out.say("up", f"using Evolution API at {settings.evolution_api_url}")
        return
    res = build_resources(settings)
    try:
        added = register_simulated_instances(res.instances, settings, datetime.now(tz=UTC))
    finally:
        res.close()
    out.say("up", f"simulated instances ready ({', '.join(added) or 'already registered'})")


def run(settings: Settings, ports: Ports, stream: IO[str] = sys.stdout) -> int:
    """Run the stack until Ctrl-C/SIGTERM (exit status 0) or a child's death (1)."""
    out = Output(stream)
    prepare(settings, out)
    with tempfile.TemporaryDirectory(prefix="zapdispatch-up-") as state, stop_requested() as stop:
        specs = child_specs(settings, ports, Path(state))
        children = start_children(specs, child_env(settings, ports, dict(os.environ)), ports, out)
        out.say(
            "up",
            f"status API http://{LOOPBACK}:{ports.api}/  Flower "
            f"http://{LOOPBACK}:{ports.flower}/  (Ctrl-C stops everything)",
        )
        try:
            code = supervise(children, stop, out) if len(children) == len(specs) else 1
        finally:
            stop_all(children, out)
    return code
