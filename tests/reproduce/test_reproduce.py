"""`lazymeta reproduce`: every entry runs end to end at smoke scale, a killed reproduction continues where it
stopped, and the verdict lines are computed from the numbers."""
import json
import math

import pytest

from lazymeta.cli import main
from lazymeta.infra.errors import ConfigError
from lazymeta.reproduce import runner
from lazymeta.reproduce.entries import ENTRIES, reproduce
from lazymeta.reproduce.fewshot import ALGORITHM_ROWS, merge
from lazymeta.reproduce.report import claim_lines, write
from lazymeta.reproduce.spec import Claim, Plan, Run
from lazymeta.reproduce.stats import mean_ci, verdict


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_every_entry_runs_at_smoke_scale(name, request, tmp_path, capsys):
    root = request.getfixturevalue("mnist_root" if name == "table5" else "glyphs_root")  # attacks need MNIST
    out = tmp_path / name
    assert main(["reproduce", name, "--scale", "smoke", "--seeds", "1", "--data-root", str(root),
                 "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    plan = ENTRIES[name].plan("smoke", 1, str(root))
    assert len(report["runs"]) == len(plan.runs) and all(r is not None for r in report["runs"].values())
    md = (out / "report.md").read_text()
    assert "smoke scale" in md and "their numbers mean nothing" in md
    assert md.count("(1 seed, smoke scale): inconclusive") == len(plan.claims) == len(report["claims"]) > 0
    assert (out / "plot.png").exists() == bool(plan.x_axis)
    assert capsys.readouterr().out.startswith(f"# {ENTRIES[name].title}")


def test_a_killed_reproduction_reuses_finished_runs(glyphs_root, tmp_path, monkeypatch):
    out = tmp_path / "r"
    real = runner._in_process
    calls = []

    def dying(out_, run):
        calls.append(run.key)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(out_, run)

    monkeypatch.setattr(runner, "_in_process", dying)
    with pytest.raises(KeyboardInterrupt):
        reproduce("fig2-noniid", "smoke", 1, str(glyphs_root), out, jobs=1, progress=False)
    monkeypatch.setattr(runner, "_in_process", real)
    ran = []
    monkeypatch.setattr(runner, "_in_process", lambda o, r: (ran.append(r.key), real(o, r)))
    reproduce("fig2-noniid", "smoke", 1, str(glyphs_root), out, jobs=1, progress=False)
    total = len(ENTRIES["fig2-noniid"].plan("smoke", 1, str(glyphs_root)).runs)
    assert set(calls[:2]).isdisjoint(ran) and calls[2] in ran and len(ran) == total - 2


def test_report_only_reports_the_finished_runs_and_starts_none(glyphs_root, tmp_path, monkeypatch):
    out = tmp_path / "r"
    real, calls = runner._in_process, []

    def dying(out_, run):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(run.key)
        real(out_, run)

    monkeypatch.setattr(runner, "_in_process", dying)
    with pytest.raises(KeyboardInterrupt):
        reproduce("fig2-noniid", "smoke", 1, str(glyphs_root), out, jobs=1, progress=False)
    monkeypatch.setattr(runner, "_in_process", lambda o, r: pytest.fail(f"report_only started {r.key}"))
    report = reproduce("fig2-noniid", "smoke", 1, str(glyphs_root), out, jobs=1, progress=False, report_only=True)
    assert sorted(k for k, r in report["runs"].items() if r is not None) == sorted(calls)
    total = len(ENTRIES["fig2-noniid"].plan("smoke", 1, str(glyphs_root)).runs)
    assert f"Runs: 2 of {total}" in (out / "report.md").read_text()


def test_only_runs_the_matching_runs_and_reports_every_finished_one(glyphs_root, tmp_path, monkeypatch):
    out, real, ran = tmp_path / "r", runner._in_process, []
    monkeypatch.setattr(runner, "_in_process", lambda o, r: (ran.append(r.key), real(o, r)))
    plan = ENTRIES["fig2-noniid"].plan("smoke", 1, str(glyphs_root))
    first, second = plan.runs[-2].key, plan.runs[-1].key  # "non-i.i.d./...": no other key contains them
    reproduce("fig2-noniid", "smoke", 1, str(glyphs_root), out, jobs=1, progress=False, only=first)
    report = reproduce("fig2-noniid", "smoke", 1, str(glyphs_root), out, jobs=1, progress=False, only=second)
    assert ran == [first, second]  # each process of a shared grid runs its own part only
    assert sorted(k for k, r in report["runs"].items() if r is not None) == sorted([first, second])
    with pytest.raises(ConfigError, match="--only 'nothing' matches no run of fig2-noniid"):
        reproduce("fig2-noniid", "smoke", 1, str(glyphs_root), out, jobs=1, progress=False, only="nothing")


def test_verdicts_come_from_the_paired_differences():
    plan = Plan([], ["lazy", "plain"], ["c"], [Claim("lazy − plain", "lazy", "plain", "c")])
    grid = {("lazy", "c"): {0: 80.0, 1: 82.0, 2: 81.0}, ("plain", "c"): {0: 70.0, 1: 71.0, 2: 72.0}}
    (line,) = claim_lines(plan, grid, "cpu")
    assert line["ours"] == pytest.approx(10.0) and line["verdict"] == "reproduced" and line["seeds"] == 3
    mean, ci = mean_ci([10.0, 11.0, 9.0])
    assert ci == pytest.approx(4.303 * 1.0 / math.sqrt(3))  # Student's t with 2 degrees of freedom
    assert verdict(-5.0, 1.0) == "not reproduced" and verdict(0.5, 1.0) == "inconclusive"
    assert verdict(-5.0, 1.0, direction=-1) == "reproduced"  # lower is better (memory)
    assert verdict(3.0, float("nan")) == "inconclusive"  # one seed: no interval, no verdict


def test_horizon_runs_every_algorithm_on_the_same_tasks_k_and_budget():
    plan = ENTRIES["horizon"].plan("cpu", 2, "DATA")
    assert set(ALGORITHM_ROWS) <= set(plan.rows) and len(plan.runs) == 2 * len(plan.rows)
    shared = {}
    for run in plan.runs:
        config = merge(run.config, {"algorithm": {"name": None}, "iterations": None})
        shared.setdefault(run.seed, []).append(config)
        assert run.config["algorithm"]["steps"] == 20 and run.config["episodes"]["ways"] == 20
        assert run.config["iterations"] == (0 if run.row == "untrained start" else 100)
    assert all(c == configs[0] for configs in shared.values() for c in configs)
    names = [run.config["algorithm"].get("name") for run in plan.runs if run.seed == 0]
    assert names[1:] == [ALGORITHM_ROWS[row] for row in plan.rows[1:]]


def test_a_few_shot_run_reports_its_median_logged_meta_step_time(tmp_path):
    run = Run("a/s0", {"eval_episodes": 4}, "row", "column", 0)
    directory = runner.run_dir(tmp_path, run)
    directory.mkdir(parents=True)
    (directory / "results.json").write_text(json.dumps({"episodes": 4, "accuracy": 50.0}))
    assert "meta_step_ms" not in runner.finished(tmp_path, run)  # no meta-step logged (0 iterations)
    (directory / "metrics.jsonl").write_text("".join(json.dumps({"iteration": i, "seconds": s}) + "\n"
                                                     for i, s in enumerate([0.3, 0.1, 0.2, 0.5])))
    assert runner.finished(tmp_path, run)["meta_step_ms"] == pytest.approx(250.0)


def test_published_numbers_stand_only_beside_the_metric_they_are_of(tmp_path):
    plan = Plan([Run("a/s0", {}, "MAML", "5w1s", 0)], ["MAML"], ["5w1s"], published={("MAML", "5w1s"): "98.7 ± 0.4"})
    results = {"a/s0": {"accuracy": 97.0, "meta_step_ms": 250.0}}
    write(tmp_path, "t", "T", "cpu", plan, results, {"accuracy (%)": "accuracy", "time (ms)": "meta_step_ms"}, 0.0)
    md = (tmp_path / "report.md").read_text()
    assert "| MAML | 97.00 (98.7 ± 0.4) |" in md and "| MAML | 250.00 |" in md
    assert md.count("published number in brackets") == 1


def test_an_entry_without_its_datasets_says_which_are_missing(tmp_path):
    with pytest.raises(ConfigError, match=r"table2 has no run at cpu scale with --data-root .*: miniimagenet: not on "
                                          r"this machine .*; tieredimagenet: not on this machine"):
        reproduce("table2", "cpu", 1, str(tmp_path), tmp_path / "out", jobs=1, progress=False, only="x")
