"""The main job's speed on an idle CPU and with one core taken by another process, for several thread setups.

Each setup runs the main job (configs/fewshot/main.yaml) for ``--iterations`` meta-iterations and
``--episodes`` test episodes in a fresh process, once with the machine as it is and once beside a busy-loop
process pinned to core 0 (``taskset``); setups and conditions are interleaved over ``--repeats`` rounds
and the medians reported. Rates exclude start-up: meta-iterations/s from the per-iteration times the run
logs, episodes/s from the evaluation's wall time.

    python benchmarks/load.py                          # the table
    python benchmarks/load.py --iterations 40 --repeats 3

Check `uptime` first: "idle" means idle only if nothing else runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# setup -> (environment additions, --set overrides)
SETUPS = {
    "torch default: 2 op threads, tasks in turn": ({}, ["threads=2", "task_threads=1"]),
    "OMP_NUM_THREADS=1, tasks in turn": ({"OMP_NUM_THREADS": "1"}, ["task_threads=1"]),
    "lazymeta default: 1 op thread, task threads": ({}, []),
}
CHILD = """
import json, sys, time
from lazymeta.fewshot.config import FewShotConfig
from lazymeta.fewshot.train import evaluate_run, train
from lazymeta.infra.config import dotted, load_yaml, update
out, iterations, episodes, sets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
config = update(FewShotConfig(), load_yaml("configs/fewshot/main.yaml"), "main.yaml")
config = update(config, {"iterations": iterations, "log_every": 1, "eval_untrained": False, **dotted(sets)}, "bench")
train(config, out, progress=False)
began = time.perf_counter()
evaluate_run(out, episodes, progress=False)
seconds = [json.loads(l)["seconds"] for l in open(out + "/metrics.jsonl")][2:]  # after 2 warm-up iterations
print(json.dumps({"it_s": 1 / (sum(seconds) / len(seconds)), "ep_s": episodes / (time.perf_counter() - began)}))
"""


def run(setup: str, busy: bool, iterations: int, episodes: int, data_root: str | None) -> dict:
    env_extra, sets = SETUPS[setup]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"} | env_extra
    if data_root:
        env["LAZYMETA_DATA"] = data_root
    hog = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, "-c", CHILD, f"{tmp}/run", str(iterations), str(episodes), *sets],
                                 env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    finally:
        if hog:
            hog.kill()
            hog.wait()
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--episodes", type=int, default=60)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--data-root", help="where the glyphs cache lives (default: lazymeta's)")
    args = p.parse_args()
    print(f"cores: {len(os.sched_getaffinity(0))}, load before: {os.getloadavg()[0]:.2f}", flush=True)
    rates: dict[tuple[str, bool], list[dict]] = {}
    for _ in range(args.repeats):
        for setup in SETUPS:
            for busy in (False, True):
                began = time.perf_counter()
                r = run(setup, busy, args.iterations, args.episodes, args.data_root)
                rates.setdefault((setup, busy), []).append(r)
                print(f"  {setup:<46} {'busy core' if busy else 'idle':<9} {r['it_s']:6.2f} it/s {r['ep_s']:6.2f} ep/s"
                      f"  ({time.perf_counter() - began:.0f} s)", flush=True)
    print(f"\n| setup | meta-it/s idle | meta-it/s busy core | busy / idle | episodes/s idle | episodes/s busy core "
          f"| busy / idle |\n|---|---:|---:|---:|---:|---:|---:|")
    for setup in SETUPS:
        med = {busy: {k: statistics.median(r[k] for r in rates[(setup, busy)]) for k in ("it_s", "ep_s")}
               for busy in (False, True)}
        print(f"| {setup} | {med[False]['it_s']:.2f} | {med[True]['it_s']:.2f} | "
              f"{100 * med[True]['it_s'] / med[False]['it_s']:.0f} % | {med[False]['ep_s']:.2f} | "
              f"{med[True]['ep_s']:.2f} | {100 * med[True]['ep_s'] / med[False]['ep_s']:.0f} % |")


if __name__ == "__main__":
    main()
