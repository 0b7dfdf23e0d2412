"""Private servers for fault injection: a `redis-server` and a PostgreSQL cluster of our own.

Faults (kill, restart, stop) are only ever applied to these, on spare loopback ports, never
to the machine's shared Redis (6379) and PostgreSQL (5432), so the rest of the suite keeps
running. Neither keeps anything worth keeping: Redis runs without RDB/AOF, PostgreSQL with
fsync off, both under a temporary directory removed at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis

from tests.support.services import free_port

START_TIMEOUT_SECONDS = 30.0


def _wait(predicate: object, what: str, timeout: float = START_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


class PrivateRedis:
    """`redis-server` on a spare loopback port; `restart()` loses every key (nothing on disk)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = (workdir / f"redis-{self.port}.log").open("ab")

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self._proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self._workdir),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait(self.is_up, f"redis-server on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: the server dies with everything it held in memory."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=10)
        self._proc = None

    def restart(self) -> None:
        """Kill and start again on the same port: an empty Redis, as after a crash."""
        self.kill()
        self.start()

    def is_up(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def close(self) -> None:
        self.kill()
        self._log.close()


def postgres_bindir() -> str | None:
    """Directory of `initdb`/`pg_ctl`: PG_BINDIR, then Debian's layout, then PATH."""
    candidates = [os.environ.get("PG_BINDIR", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    which = shutil.which("pg_ctl")
    candidates.append(str(Path(which).parent) if which else "")
    for path in candidates:
        if path and Path(path, "initdb").exists() and Path(path, "pg_ctl").exists():
            return path
    return None


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (`initdb` + `pg_ctl`) on a spare loopback port.

    initdb refuses to run as root, so as root the cluster belongs to the `postgres` user
    (commands go through `runuser`). Trust authentication, fsync off, sockets in its own
    temporary directory.
    """

    def __init__(self, bindir: str) -> None:
        self.port = free_port()
        self._bindir = bindir
        self._root = Path(tempfile.mkdtemp(prefix="zd-chaos-pg-"))
        self._data = self._root / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self._root, "postgres", "postgres")
        self.admin_dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = [str(Path(self._bindir, args[0])), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self._data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        )
        self.start()

    def start(self) -> None:
        # fsync=off only skips flushes to disk, which matter when the OS crashes; a stopped
        # server keeps every commit. synchronous_commit stays on: with it off, an immediate
        # stop loses commits the client was already told about (a `sent` the worker saw
        # succeed would silently revert to `sending`).
        options = (
            f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self._data),
            "-l",
            str(self._root / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )
        _wait(self.is_up, f"PostgreSQL on port {self.port}")

    def stop(self, mode: str = "immediate") -> None:
        """`immediate`: every backend dies at once, as in a crash (recovery on next start)."""
        self._run("pg_ctl", "-D", str(self._data), "-m", mode, "-w", "stop", check=False)

    def is_up(self) -> bool:
        try:
            with psycopg.connect(self.admin_dsn, connect_timeout=1):
                return True
        except psycopg.Error:
            return False

    def execute(self, sql: str) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._root, ignore_errors=True)
