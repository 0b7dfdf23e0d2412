"""Profile the hot path with pyinstrument: `send_message`'s work for N messages, in-process.

    python -m bench.hotpath                  # 3 instances, 300 messages
    python -m bench.hotpath --instances 1000 # routing over a large pool

Intake, route, reserve (real Redis), claim, send (Evolution faked by MockTransport: no
network), record (real PostgreSQL), one thread: what a worker slot does, minus Celery.
Prints pyinstrument's tree (wall clock; time spent waiting on PostgreSQL shows as such).
For a live worker, py-spy (`pip install py-spy`, not a dependency) does the same:
`py-spy record --gil --subprocesses --pid <worker pid>`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import time
import uuid

from pyinstrument import Profiler

from bench import env as bench_env
from bench import scale
from tests.support.stack import build_stack
from worker.composition import Pipeline
from worker.countdowns import CountdownBook

CONTACTS = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument(
        "--plain", action="store_true", help="no profiler: CPU and wall time per message only"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    env = bench_env.open_env()
    try:
        stack = build_stack(env.settings(), clock=time.time, policies=False)
        env.reset(stack.res.engine)
        scale.CONTACTS = CONTACTS
        scale._insert_contacts(stack)
        scale._set_instances(stack, args.instances)
        stack.forget_instances()
        book = CountdownBook(stack.res.redis)
        pipe = Pipeline(stack.intake, stack.dispatcher, stack.sweeper, book)

        def send(n: int) -> None:
            c = n % CONTACTS
            fields = {
                "phone": scale.contact_phone(c),
                "text": f"profile {n}",
                "contact_id": scale.contact_id(c),
            }
            pipe.send((), fields, task_id=str(uuid.uuid4()))

        for n in range(50):  # warm-up: connections, statement caches, script load
            send(n)
        profiler = Profiler(interval=0.0005)
        began, cpu = time.perf_counter(), time.process_time()
        with profiler if not args.plain else contextlib.nullcontext():
            for n in range(50, 50 + args.messages):
                send(n)
        wall_ms = (time.perf_counter() - began) * 1000 / args.messages
        cpu_ms = (time.process_time() - cpu) * 1000 / args.messages
        if not args.plain:
            print(profiler.output_text(unicode=True, color=False))
        overhead = "" if args.plain else " (profiler overhead included)"
        print(
            f"{args.messages} messages, {args.instances} instances: {wall_ms:.2f} ms wall, "
            f"{cpu_ms:.2f} ms CPU per message{overhead}"
        )
        stack.close()
    finally:
        bench_env.close_env(env)


if __name__ == "__main__":
    main()
