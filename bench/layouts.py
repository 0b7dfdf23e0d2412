"""`make bench` figures of two commits, measured in one run: section by section, alternating.

    python -m bench.layouts --old 7d895a7                 # every section both commits have
    python -m bench.layouts --old c6c7bea --only throughput

Each commit is exported (`git archive`) into its own directory under $TMPDIR, gets its own
environment from its own lock file (`uv sync --frozen`), and runs `python -m bench --only
<section>` there, the old one first, then the new one, section after section, so that the
load on the machine drifts over both alike. `--new` defaults to HEAD (committed work only).

Writes bench/results/layouts.json and layouts.md: for every figure of a section (a number
in its JSON), old, new and new ÷ old. The noise of a figure is the spread of its own
per-trial values where the section reports them (`ratios`: min–max over its trials); a
ratio is "worse" only when new is below the old trials' lowest value.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.env import ROOT
from bench.report import RESULTS

SKIP = ("seconds", "steal_percent", "rss", "setup_seconds")


def export(ref: str, into: Path) -> Path:
    """`ref`'s tree in `into/<sha>`, with its own virtual environment."""
    sha = _git("rev-parse", "--short", ref)
    where = into / sha
    if not where.exists():
        archive = subprocess.run(
            ["git", "archive", "--format=tar", sha], cwd=ROOT, capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(where, filter="data")
    subprocess.run(["uv", "sync", "--frozen", "--quiet"], cwd=where, check=True)
    return where


def sections_of(tree: Path) -> list[str]:
    done = subprocess.run(
        ["uv", "run", "--frozen", "python", "-c", "import bench.__main__ as m; print(*m.SECTIONS)"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def run_section(tree: Path, section: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.setdefault("ZD_BENCH_DATABASE", "zd_bench_layouts")  # beside a `make bench` running
    subprocess.run(
        ["uv", "run", "--frozen", "python", "-m", "bench", "--only", section],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    results = json.loads((tree / "bench" / "results" / "latest.json").read_text())
    out: dict[str, Any] = results.get(section, {"error": "no result"})
    return out


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Numbers (and lists of numbers) of a section's JSON by path; lists of objects are
    keyed by their `config` label where they have one."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            out |= flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
        out[prefix] = [float(v) for v in value]
    elif isinstance(value, list):
        for n, item in enumerate(value):
            label = item.get("config", n) if isinstance(item, dict) else n
            out |= flatten(item, f"{prefix}[{label}]")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out[prefix] = float(value)
    return out


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    a, b = flatten(old), flatten(new)
    rows = []
    for path in sorted(set(a) & set(b)):
        if any(word in path for word in SKIP) or isinstance(a[path], list):
            continue
        row: dict[str, Any] = {"figure": path, "old": a[path], "new": b[path]}
        if a[path]:
            row["new_over_old"] = round(b[path] / a[path], 3)
        trials = path.rsplit(".", 1)[0] + ".ratios" if path.endswith(".ratio") else None
        if trials and isinstance(a.get(trials), list) and isinstance(b.get(trials), list):
            row["old_trials"], row["new_trials"] = a[trials], b[trials]
            row["worse_than_noise"] = b[path] < min(a[trials])
        rows.append(row)
    return rows


def markdown(meta: dict[str, Any], table: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        f"# Bench: {meta['old']} (old) against {meta['new']} (new), one run",
        "",
        f"{meta['date']}; sections alternated old → new. A ratio is worse than its noise "
        "when the new figure is below every one of the old trials.",
        "",
        "| Section | Figure | Old | New | New ÷ old | Old trials | Worse than noise |",
        "|---|---|---|---|---|---|---|",
    ]
    for section, rows in table.items():
        for r in rows:
            trials = (
                "–".join(f"{v:g}" for v in (min(r["old_trials"]), max(r["old_trials"])))
                if "old_trials" in r
                else ""
            )
            worse = {True: "❌", False: "no"}.get(r.get("worse_than_noise"), "")
            lines.append(
                f"| {section} | {r['figure']} | {r['old']:g} | {r['new']:g} | "
                f"{r.get('new_over_old', '')} | {trials} | {worse} |"
            )
    return "\n".join(lines) + "\n"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.layouts", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--old", required=True, help="the commit to compare against")
    parser.add_argument("--new", default="HEAD")
    parser.add_argument("--only", default="", help="comma-separated sections (default: shared)")
    args = parser.parse_args()
    base = Path(tempfile.gettempdir()) / "zd-bench-layouts"
    old, new = export(args.old, base), export(args.new, base)
    shared = [s for s in sections_of(new) if s in set(sections_of(old))]
    chosen = [s for s in args.only.split(",") if s] or shared
    table: dict[str, list[dict[str, Any]]] = {}
    raw: dict[str, Any] = {}
    for section in chosen:
        print(f"[layouts] {section}: old ...", file=sys.stderr, flush=True)
        before = run_section(old, section)
        print(f"[layouts] {section}: new ...", file=sys.stderr, flush=True)
        after = run_section(new, section)
        raw[section] = {"old": before, "new": after}
        table[section] = compare(before, after)
    meta = {
        "old": old.name,
        "new": new.name,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "layouts.json").write_text(
        json.dumps({"meta": meta, "table": table, "raw": raw}, indent=2) + "\n"
    )
    (RESULTS / "layouts.md").write_text(markdown(meta, table))
    print((RESULTS / "layouts.md").read_text())


if __name__ == "__main__":
    main()
