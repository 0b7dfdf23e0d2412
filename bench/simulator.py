"""The Evolution simulator in its own process (so it does not share the bench's GIL).

    python -m bench.simulator inst-a,inst-b,inst-c [--latency-ms 0]

Prints `url=http://127.0.0.1:<port>` once it answers, then serves until stdin closes.
Latency can be changed while it runs: PUT /_sim/config {"latency_ms": ...}.
"""

from __future__ import annotations

import argparse
import logging
import sys

from tests.simulator_server import running_simulator


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("instances")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    names = [n for n in args.instances.split(",") if n]
    with running_simulator(names, latency_ms=args.latency_ms, seed=1) as sim:
        print(f"url={sim.url}", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
