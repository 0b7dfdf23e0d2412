"""Results: `bench/results/latest.json` (everything) and `latest.md` (the tables the README
shows). Every figure in the table is a ratio or a count measured in the same run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.env import ROOT

RESULTS = ROOT / "bench" / "results"


def write(results: dict[str, Any]) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path, md_path = RESULTS / "latest.json", RESULTS / "latest.md"
    json_path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    md_path.write_text(markdown(results))
    return json_path, md_path


def _mark(ok: bool | None) -> str:
    return "–" if ok is None else ("✅" if ok else "❌")


def _row(section: str, figure: str, value: str, target: str, ok: bool | None) -> str:
    return f"| {section} | {figure} | {value} | {target} | {_mark(ok)} |"


def markdown(r: dict[str, Any]) -> str:
    meta = r["meta"]
    lines = [
        "# Benchmark results",
        "",
        f"`make bench` on {meta['date']}, commit `{meta['commit']}`"
        f"{' (uncommitted changes)' if meta.get('dirty') else ''}, {meta['cpus']} CPUs, "
        f"load average {meta['load_before']} → {meta['load_after']}"
        f"{_steal(r)}, {meta['seconds']:.0f} s. Each figure is a ratio or a count from this "
        "one run (see docs/benchmarks.md for the method).",
        "",
        "| Benchmark | Figure | Result | Target | |",
        "|---|---|---|---|---|",
    ]
    lines += _summary(r)
    lines += _details(r)
    return "\n".join(lines) + "\n"


def _steal(r: dict[str, Any]) -> str:
    """', CPU steal 3.1 % (throughput 4.0 %)' where the machine reports steal time."""
    run = r["meta"].get("steal_percent")
    if run is None:
        return ""
    sections = [
        f"{name} {r[name]['steal_percent']} %"
        for name in r
        if name != "meta" and isinstance(r[name], dict) and r[name].get("steal_percent") is not None
    ]
    return f", CPU steal {run} % ({', '.join(sections)})" if sections else f", CPU steal {run} %"


def _error(r: dict[str, Any], key: str, title: str) -> list[str]:
    section = r.get(key)
    if section is None:
        return []
    if "error" in section:
        return [_row(title, "failed", section["error"].splitlines()[0][:120], "", False)]
    if "missing" in section:
        return [_row(title, "not run", section["missing"], "", None)]
    return []


def _summary(r: dict[str, Any]) -> list[str]:
    rows: list[str] = []
    sat = r.get("saturation")
    rows += _error(r, "saturation", "3 · saturation")
    if sat and "error" not in sat:
        title = (
            f"3 · saturation: {sat['instances']} instances × {sat['hourly_cap']}/h, "
            f"{sat['messages']:,} messages"
        )
        rows += [
            _row(
                title,
                "sends over a cap",
                str(sat["over_cap_sends"]),
                "0",
                sat["over_cap_sends"] == 0,
            ),
            _row(
                title,
                "utilization of the capacity demand could use",
                f"{100 * sat['utilization']:.1f} %",
                "≥ 98 %",
                sat["utilization"] >= 0.98,
            ),
            _row(
                title,
                "requeues per message that waited",
                f"{sat['requeues_per_waiting_message']:.2f}",
                "≤ 1.5",
                sat["requeues_per_waiting_message"] <= 1.5,
            ),
            _row(
                title,
                "limiter round trips per routing decision",
                f"{sat['limiter_calls_per_decision']:.2f}",
                "1",
                sat["limiter_calls_per_decision"] <= 1.0,
            ),
        ]
        ramp = sat.get("warmup")
        if ramp:
            title = (
                f"3 · saturation, warm-up day 1 ({ramp['schedule']}): {sat['instances']} "
                f"instances × {ramp['effective_hourly_cap']}/h effective, "
                f"{ramp['messages']:,} messages"
            )
            rows += [
                _row(title, "sends over an effective cap", str(ramp["over_cap_sends"]), "0",
                     ramp["over_cap_sends"] == 0),
                _row(title, "limiter round trips per routing decision",
                     f"{ramp['limiter_calls_per_decision']:.2f}", "1",
                     ramp["limiter_calls_per_decision"] <= 1.0),
            ]  # fmt: skip
    thr = r.get("throughput", {})
    rows += _error(r, "throughput", "7.1/7.2 · Celery")
    for o in thr.get("overhead", []):
        rows.append(
            _row(
                f"7.1 · overhead, {o['config']}",
                "pipeline ÷ bare no-op task (msg/s)",
                f"{o['ratio']:.2f} "
                f"({o['pipeline_per_second']:.0f} vs {o['bare_per_second']:.0f}/s)",
                "≥ 0.5",
                o["ratio"] >= 0.5,
            )
        )
    for io in thr.get("io", []):
        rows.append(
            _row(
                f"7.2 · I/O 300 ms, {io['config']}",
                "throughput ÷ ideal (slots ÷ 0.3 s)",
                f"{io['ratio']:.2f} ({io['per_second']:.0f} of {io['ideal_per_second']:.0f}/s)",
                "≥ 0.8",
                io["ratio"] >= 0.8,
            )
        )
    sc = r.get("scale")
    rows += _error(r, "scale", "7.3 · scale")
    if sc and "error" not in sc:
        title = f"7.3 · scale, {sc['contacts']:,} contacts"
        big = sc["sizes"]["1000"]
        rows += [
            _row(
                title,
                "routing decision p50, 1,000 ÷ 10 instances",
                f"{sc['decision_p50_ratio_1000_vs_10']:.2f}",
                "< 2",
                sc["decision_p50_ratio_1000_vs_10"] < 2,
            ),
            _row(
                title,
                "Redis round trips per message (all commands)",
                f"{big['redis_round_trips_per_message']:.2f}",
                "1",
                big["redis_round_trips_per_message"] <= 1.0,
            ),
            _row(
                title,
                "SQL statements per message (transactions)",
                f"{big['sql_statements_per_message']:.1f} ({big['transactions_per_message']:.1f})",
                "counted",
                None,
            ),
        ]
    hc = r.get("health")
    rows += _error(r, "health", "7.4 · health check")
    if hc and "error" not in hc and "missing" not in hc and "first_poll_vs_floor_1000" in hc:
        title = "7.4 · health check, 20 % hung"
        rows += [
            _row(
                title,
                "1,000 ÷ 100 instances, whole run (steady state)",
                f"{hc['second_total_ratio_1000_vs_100']:.2f}",
                "≈ 1",
                None,
            ),
            _row(
                title,
                "poll of 1,000 ÷ (hedge + probe timeout)",
                f"{hc['second_poll_vs_floor_1000']:.2f}",
                "≈ 1",
                None,
            ),
        ]
    rows += _webhooks(r)
    rows += _recovery(r)
    return rows


def _webhooks(r: dict[str, Any]) -> list[str]:
    hooks = r.get("webhooks")
    rows = _error(r, "webhooks", "webhooks in")
    if not hooks or "error" in hooks or "missing" in hooks:
        return rows
    title = (
        f"webhooks in: {hooks['requests_per_round']:,} receipts × {len(hooks['rounds']['bare'])} "
        f"rounds, {hooks['concurrency']} in flight"
    )
    real, bare = hooks["best"]["webhooks"], hooks["best"]["bare"]
    return [
        *rows,
        _row(title, "events/s ÷ a bare FastAPI endpoint (median of rounds)",
             f"{hooks['ratio']:.2f} ({real['events_per_second']:.0f} vs "
             f"{bare['events_per_second']:.0f}/s best)",
             f"≥ {hooks['target_ratio']}", hooks["ratio"] >= hooks["target_ratio"]),
        _row(title, "p99 latency, webhooks / bare (best round)",
             f"{real['p99_ms']:.0f} / {bare['p99_ms']:.0f} ms", "reported", None),
    ]  # fmt: skip


def _recovery(r: dict[str, Any]) -> list[str]:
    rec = r.get("recovery")
    rows = _error(r, "recovery", "recovery after SIGKILL")
    if not rec or "error" in rec or "missing" in rec:
        return rows
    title = (
        f"recovery after SIGKILL: worker group killed ×{rec['kills_per_run']} in "
        f"{rec['messages']} messages, beat on, {rec['runs']} runs"
    )
    in_flight_ok = rec["duplicates_outside_kill_window"] == 0
    return [
        *rows,
        _row(title, "messages lost", str(rec["lost"]), "0", rec["lost"] == 0),
        _row(title, "duplicates (sends in flight at the kills)",
             f"{rec['duplicated']} ({rec['sending_at_kill']})", "≤ in flight",
             in_flight_ok and rec["duplicated"] <= rec["sending_at_kill"]),
        _row(title, "kill → last of its messages sent, p50 / max",
             f"{rec['recovery_seconds_p50']:.1f} / {rec['recovery_seconds_max']:.1f} s",
             f"< {rec['recovery_target_seconds']} s (30 s)",
             rec["recovery_seconds_max"] < rec["recovery_target_seconds"]),
    ]  # fmt: skip


def _details(r: dict[str, Any]) -> list[str]:
    out: list[str] = []
    sat = r.get("saturation")
    if sat and "error" not in sat:
        out += [
            "",
            "### 3 · saturation, hour by hour",
            "",
            "| hour | " + " | ".join(str(h) for h in range(len(sat["sent_per_hour"]))) + " |",
            "|---|" + "---|" * len(sat["sent_per_hour"]),
            "| sent | " + " | ".join(str(n) for n in sat["sent_per_hour"]) + " |",
            "",
            f"{sat['waited_messages']} messages waited (max {sat['max_requeues']} requeues); "
            f"all Redis round trips per delivery attempt: "
            f"{sat['redis_round_trips_per_deliver']:.2f} (with the test clock, read "
            "from Redis on every attempt); limiter calls made again after a `stale` "
            "UTC-offset table (the simulated clock jumping days ahead): "
            f"{sat['counts'].get('offset_table_refreshes', 0)}.",
        ]
    thr = r.get("throughput", {})
    if thr.get("overhead"):
        out += [
            "",
            "### 7.1 · pipeline against a bare no-op task (zero-latency simulator)",
            "",
            "| pool | bare msg/s | pipeline msg/s | ratio (per pair) | worker CPU ms/msg "
            "bare / pipeline | worker RSS |",
            "|---|---|---|---|---|---|",
        ]
        for o in thr["overhead"]:
            out.append(
                f"| {o['config']} | {o['bare_per_second']:.0f} | "
                f"{o['pipeline_per_second']:.1f} | {o['ratio']:.3f} "
                f"({', '.join(f'{x:.2f}' for x in o['ratios'])}) | "
                f"{o['cpu_ms_per_task_bare']:.1f} / {o['cpu_ms_per_task_pipeline']:.1f} | "
                f"{o['worker_rss_mb']} MB |"
            )
    if thr.get("io"):
        out += [
            "",
            "### 7.2 · I/O concurrency, simulator answering in 300 ms",
            "",
            "| pool | msg/s | ideal | ratio | bare 300 ms task ÷ ideal | pipeline ÷ bare "
            "task | worker CPU ms/msg | worker RSS |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for io in thr["io"]:
            out.append(
                f"| {io['config']} | {io['per_second']:.1f} | {io['ideal_per_second']:.0f}"
                f" | {io['ratio']:.2f} | {io['bare_sleep_ratio']:.2f} | "
                f"{io['pipeline_vs_bare_sleep']:.2f} | {io['cpu_ms_per_message']:.1f} | "
                f"{io['worker_rss_mb']} MB |"
            )
    sc = r.get("scale")
    if sc and "error" not in sc:
        out += [
            "",
            f"### 7.3 · routing decision by pool size ({sc['contacts']:,} contacts, one thread)",
            "",
            "| instances | decision p50 / p90 / p99 ms | delivery p50 ms | Redis round "
            "trips / msg | limiter calls / decision | SQL statements / msg | "
            "transactions / msg |",
            "|---|---|---|---|---|---|---|",
        ]
        for size, s in sc["sizes"].items():
            out.append(
                f"| {size} | {s['decision_ms_p50']:.2f} / {s['decision_ms_p90']:.2f} / "
                f"{s['decision_ms_p99']:.2f} | {s['deliver_ms_p50']:.2f} | "
                f"{s['redis_round_trips_per_message']:.2f} | "
                f"{s['limiter_calls_per_decision']:.2f} | "
                f"{s['sql_statements_per_message']:.2f} | "
                f"{s['transactions_per_message']:.2f} |"
            )
        out += [
            "",
            f"Ratio per round (interleaved): "
            f"{', '.join(f'{x:.2f}' for x in sc['decision_p50_ratio_per_round'])}.",
        ]
    hc = r.get("health")
    if hc and "sizes" in hc:
        out += [
            "",
            "### 7.4 · health check (bench/health_check.py), probe timeout "
            f"{hc['probe_timeout_seconds']} s, hedge {hc['hedge_seconds']} s",
            "",
            "| instances | run | total s | poll s | mode |",
            "|---|---|---|---|---|",
        ]
        for size, s in hc["sizes"].items():
            if "error" in s:
                out.append(f"| {size} | failed | {s['error'][:80]} | | |")
                continue
            for run_name in ("first", "second"):
                one = s[run_name]
                out.append(
                    f"| {size} | {run_name} | {one['total_seconds']:.2f} | "
                    f"{one['poll_seconds']:.2f} | {one['mode']} |"
                )
    return out
