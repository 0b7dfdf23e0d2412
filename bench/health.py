"""Issue 7.4: one health check of 100 and of 1,000 instances, 20 % never answering.

Runs the monitor engineer's `bench/health_check.py` (a script with its own scratch database,
simulator and fake Slack) as a subprocess on the bench's Redis database, and reads its
output. Figures are ratios: the poll against its floor (hedge + one probe timeout, the time
a hung probe costs by design) and 1,000 instances against 100 in the same run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

from bench.env import ROOT, BenchEnv

SCRIPT = ROOT / "bench" / "health_check.py"
SIZES = (100, 1000)
HUNG_SHARE = 0.2
PROBE_TIMEOUT_SECONDS = 2.0
HEDGE_SECONDS = 0.5
RUN_TIMEOUT_SECONDS = 300

_LINE = re.compile(
    r"(?P<run>first|second) run[^:]*: (?P<total>[\d.]+) s total, poll (?P<poll>[\d.]+) s "
    r"via (?P<mode>[^;]+);"
)


def run(env: BenchEnv) -> dict[str, Any]:
    if not SCRIPT.exists():
        return {"missing": f"{SCRIPT.relative_to(ROOT)} does not exist"}
    sizes = {str(n): _one(env, n) for n in SIZES}
    out: dict[str, Any] = {
        "probe_timeout_seconds": PROBE_TIMEOUT_SECONDS,
        "hedge_seconds": HEDGE_SECONDS,
        "sizes": sizes,
    }
    small, large = sizes[str(SIZES[0])], sizes[str(SIZES[-1])]
    if "error" in small or "error" in large:
        return out
    floor = PROBE_TIMEOUT_SECONDS + HEDGE_SECONDS
    for run_name in ("first", "second"):
        out[f"{run_name}_total_ratio_1000_vs_100"] = round(
            large[run_name]["total_seconds"] / small[run_name]["total_seconds"], 3
        )
        out[f"{run_name}_poll_vs_floor_1000"] = round(large[run_name]["poll_seconds"] / floor, 3)
    return out


def _one(env: BenchEnv, instances: int) -> dict[str, Any]:
    argv = [
        sys.executable,
        str(SCRIPT),
        "-n",
        str(instances),
        "--hung",
        str(int(instances * HUNG_SHARE)),
        "--timeout",
        str(PROBE_TIMEOUT_SECONDS),
        "--hedge",
        str(HEDGE_SECONDS),
        "--redis-db",
        str(env.redis_db),
    ]
    try:
        done = subprocess.run(
            argv,
            cwd=ROOT,
            env=env.worker_env(),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {RUN_TIMEOUT_SECONDS} s"}
    runs = {
        m["run"]: {
            "total_seconds": float(m["total"]),
            "poll_seconds": float(m["poll"]),
            "mode": m["mode"].strip(),
        }
        for m in _LINE.finditer(done.stdout)
    }
    if done.returncode != 0 or set(runs) != {"first", "second"}:
        tail = (done.stdout + done.stderr)[-1500:]
        return {"error": f"exit {done.returncode}; output: {tail}"}
    return {"hung": int(instances * HUNG_SHARE), **runs}
