"""The README runs as written: every Python block is executed (in a directory holding what it names: a run
of the main job's name, trained at toy scale, and a user's PNG files), and every `lazymeta` command line of
its shell blocks parses with the options it shows."""
import re
import shlex
from pathlib import Path

import pytest
from PIL import Image

from lazymeta.cli import main, parser

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README.read_text(), flags=re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
SHELL = [line for lang, code in BLOCKS if lang == "bash" for line in code.splitlines()]


def commands() -> list[list[str]]:
    """``lazymeta ...`` invocations of the shell blocks, comments and continuations joined."""
    text = "\n".join(SHELL).replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "lazymeta" not in line or "..." in line:
            continue
        argv = shlex.split(line.replace("~", "HOME"))
        start = argv.index("lazymeta") + 1
        out.append(argv[start:])
    return out


def test_the_readme_has_code_to_check():
    assert len(PYTHON) >= 2 and len(commands()) >= 8


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs(index, glyphs_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAZYMETA_DATA", str(glyphs_root))
    code = PYTHON[index]
    for run in re.findall(r'lazymeta\.load\("([^"]+)"\)', code):  # a run of that name, trained at toy scale
        assert main(["train", "--iterations", "1", "--steps", "1", "--set", "model.hidden=4", "--out", run,
                     "--no-eval", "--quiet"]) == 0
    for name in re.findall(r'"(\w+\.png)"', code):
        Image.new("L", (40, 40), color=sum(map(ord, name)) % 255).save(name)
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {})


@pytest.mark.parametrize("argv", commands(), ids=lambda a: " ".join(a)[:60])
def test_shell_command_parses(argv):
    args = parser(argv[0]).parse_args(argv)
    assert args.command == argv[0]
