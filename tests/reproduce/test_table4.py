"""`lazymeta reproduce table4`: rows that differ only in their method, the cpu scale's data, and long-tail runs
in this process and in a subprocess (the smoke report itself runs in test_reproduce.py with every entry)."""
import pytest

from lazymeta.infra.errors import ConfigError
from lazymeta.reproduce.entries import ENTRIES
from lazymeta.reproduce.longtail import ROWS, ZIP
from lazymeta.reproduce.runner import execute


def plan(scale="smoke", seeds=2, data_root=None):
    return ENTRIES["table4"].plan(scale, seeds, data_root)


def test_every_row_gets_the_same_data_network_and_budget():
    p = plan()
    assert len(p.runs) == len(ROWS) * 2 * 2 and p.rows == list(ROWS) and p.lower_is_better
    cells = {}
    for run in p.runs:
        shared = {k: v for k, v in run.config.items() if k != "method"}
        cells.setdefault((run.column, run.seed), []).append((shared, run.config["method"]["name"]))
    for (column, seed), configs in cells.items():
        assert all(shared == configs[0][0] for shared, _ in configs), (column, seed)
        assert configs[0][0]["data"]["imbalance"] == int(column.split()[-1]) and configs[0][0]["seed"] == seed
        assert [name for _, name in configs] == [method["name"] for _, method in ROWS.values()]
    assert {(c.better, c.worse) for c in p.claims} == {("lazy two-component", "two-component"),
                                                        ("lazy two-component", "lazy two-component, k = 0"),
                                                        ("two-component", "CB-FT")}


def test_cpu_scale_reads_the_cifar10_images_from_the_data_root(tmp_path):
    with pytest.raises(ConfigError, match=f"put it in {tmp_path / 'cifar10'}"):
        plan("cpu", 1, str(tmp_path))
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / ZIP).write_bytes(b"")
    images = str(tmp_path / "cifar10" / ZIP)
    for data_root in (str(tmp_path), images):  # a data root holding cifar10/<zip>, or the zip itself
        runs = plan("cpu", 1, data_root).runs
        assert {(run.config["data"]["dataset"], run.config["data"]["root"]) for run in runs} == {("folder-lt", images)}


@pytest.mark.slow
def test_the_lazy_student_moves_and_a_run_in_a_subprocess_equals_one_in_process(tmp_path):
    runs = {run.row: run for run in plan(seeds=1).runs if run.column == "imbalance 100"}
    lazy, ablation = runs["lazy two-component"], runs["lazy two-component, k = 0"]
    here = execute(tmp_path / "here", [lazy, ablation], jobs=1, progress=False)
    there = execute(tmp_path / "there", [lazy], jobs=2, progress=False)  # jobs > 1: a lazymeta process per run
    assert here[lazy.key] == there[lazy.key]
    moved, still = here[lazy.key]["magnitudes"], here[ablation.key]["magnitudes"]
    assert moved["student_displacement"] > 0 and still["student_displacement"] == 0
    assert moved["lookahead_step"] > 0 and sum(moved["gamma_histogram"].values()) > 0
