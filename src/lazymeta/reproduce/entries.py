"""Every entry of ``lazymeta reproduce`` and the one function that runs and reports any of them."""
from __future__ import annotations

import os
import time
from pathlib import Path

from lazymeta.infra.errors import ConfigError
from lazymeta.reproduce import attack, fewshot, longtail
from lazymeta.reproduce.memory import memory
from lazymeta.reproduce.report import write
from lazymeta.reproduce.runner import execute, finished
from lazymeta.reproduce.spec import SCALES, Entry

ENTRIES: dict[str, Entry] = {
    **fewshot.ENTRIES,
    **longtail.ENTRIES,
    **attack.ENTRIES,
    "memory": Entry("memory", "Memory and time of a meta-step against k (Table A.4)", memory),
}
# report tables: label -> results field
FEWSHOT_METRICS = {"accuracy, transductive BN (%)": "accuracy", "accuracy, support-set BN (%)": "support.accuracy"}
TIMED_METRICS = {**FEWSHOT_METRICS, "time of a meta-step (ms)": "meta_step_ms"}
MEMORY_METRICS = {"peak memory of a meta-step (MB)": "peak_mb", "time of a meta-step (ms)": "ms"}
LEAP_METRICS = {**FEWSHOT_METRICS, "fraction of tasks at the lowest γ": "leap_edges.low",
                "fraction of tasks at the highest γ": "leap_edges.high"}
METRICS = {"memory": MEMORY_METRICS, "leap-reading": LEAP_METRICS, "horizon": TIMED_METRICS,
           "table2": TIMED_METRICS, "table3": TIMED_METRICS, **longtail.METRICS, **attack.METRICS}  # else FEWSHOT_METRICS


def reproduce(name: str, scale: str, seeds: int, data_root: str | None, out: Path, jobs: int | None = None,
              progress: bool = True, report_only: bool = False, only: str | None = None) -> dict:
    """Run (or continue) entry ``name`` at ``scale`` into ``out`` and write its report; returns the report.
    ``report_only`` starts no run, ``only`` runs just the runs whose key contains it (e.g. one dataset, so
    that two processes can share a grid); either way the report covers every run that has finished."""
    if name not in ENTRIES:
        raise ConfigError(f"unknown entry {name!r}; choose one of {sorted(ENTRIES)}")
    if scale not in SCALES:
        raise ConfigError(f"scale must be one of {SCALES}, got {scale!r}")
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    entry = ENTRIES[name]
    plan = entry.plan(scale, seeds, data_root)
    if not plan.runs:
        missing = [note for note in plan.notes if "not on this machine" in note]
        raise ConfigError(f"{name} has no run at {scale} scale with --data-root {data_root}: "
                          + ("; ".join(missing) or "no dataset it needs is there"))
    jobs = jobs or (1 if scale == "smoke" else os.cpu_count() or 1)
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    began = time.perf_counter()
    chosen = [run for run in plan.runs if only is None or only in run.key]
    if not chosen:
        raise ConfigError(f"--only {only!r} matches no run of {name} at {scale} scale; run keys look like "
                          f"{plan.runs[0].key!r}")
    if not report_only:
        execute(out, chosen, jobs, progress)
    results = {run.key: finished(out, run) for run in plan.runs}
    metrics = METRICS.get(name, FEWSHOT_METRICS)
    return write(out, name, entry.title, scale, plan, results, metrics, (time.perf_counter() - began) / 60)
