"""The house plan holds: imports point down (cli -> applications -> learner -> core; infra, data and models
at the ground), no circle, and ``import lazymeta`` / ``lazymeta --help`` load nothing heavy."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lazymeta"
GROUND = {"infra", "data", "models", "_version"}
CORE = {"params", "student", "teacher", "algorithms", "batchnorm"}
APPLICATIONS = {"fewshot", "longtail", "attack"}
# unit -> the units it may import (besides itself)
ALLOWED = {
    "_version": set(), "infra": set(), "models": set(), "data": {"infra"},
    "params": set(), "student": {"params"}, "teacher": {"params"}, "batchnorm": {"params"},
    "algorithms": {"params", "student", "teacher"},
    "learner": CORE,
    **{app: GROUND | CORE | {"learner"} for app in APPLICATIONS},
    "reproduce": GROUND | CORE | {"learner"} | APPLICATIONS,
    "cli": {"_version", "infra"}, "__main__": {"cli"}, "__init__": {"_version", "infra"},
}
HEAVY = ("torch", "numpy", "yaml", "tqdm", "safetensors", "PIL", "matplotlib")


def unit(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def imports() -> dict[str, set[str]]:
    """unit -> the lazymeta units its modules import (at module level or inside functions)."""
    edges: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        module = ".".join(("lazymeta", *path.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__")
        source = unit(module)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.split(".")[0] == "lazymeta" and unit(name) != source:
                    edges.setdefault(source, set()).add(unit(name))
    return edges


def test_every_unit_is_placed_in_the_plan():
    units = {unit(".".join(("lazymeta", *p.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__"))
             for p in SRC.rglob("*.py")}
    assert units <= set(ALLOWED), f"place {units - set(ALLOWED)} in the plan (tests/test_layout.py)"


@pytest.mark.parametrize("source", sorted(ALLOWED))
def test_imports_point_down(source):
    wrong = imports().get(source, set()) - ALLOWED[source]
    assert not wrong, f"lazymeta.{source} imports {sorted(wrong)}, against the plan"


def _loaded_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", f"import sys\n{code}\nprint([m for m in {HEAVY!r} if m in sys.modules])"],
                         capture_output=True, text=True, check=True).stdout
    return ast.literal_eval(out.strip().splitlines()[-1])


def test_import_lazymeta_loads_nothing_heavy_until_a_name_is_used():
    assert _loaded_after("import lazymeta; lazymeta.__version__") == []
    assert "torch" in _loaded_after("import lazymeta; lazymeta.Student")


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_help_and_version_answer_without_torch(argv):
    code = f"from lazymeta.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert _loaded_after(code) == []

