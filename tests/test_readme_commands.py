"""The README's commands run verbatim: every `fints ...` line of its code blocks is
accepted by the real argument parser (parsed only, nothing runs), and the smoke
evaluation it shows needs no `--data`."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from agent.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)


def readme_commands(text: str) -> list[list[str]]:
    """The `fints` command lines of the README's code blocks, as argv lists.

    A `...` stands for the arguments of the command above it with the same subcommand
    (`fints run ... --browser` is that `fints run` line plus `--browser`).
    """
    commands: list[list[str]] = []
    for block in FENCE.findall(text):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if not words or words[0] != "fints":
                continue
            argv = words[1:]
            if "..." in argv:
                at = argv.index("...")
                earlier = next(c for c in reversed(commands) if c[:at] == argv[:at] and "..." not in c)
                argv = earlier + argv[at + 1:]
            commands.append(argv)
    return commands


def test_the_extraction_sees_every_command_and_fills_in_placeholders() -> None:
    commands = readme_commands(README.read_text())
    assert len(commands) >= 20
    assert ["eval", "--suite", "smoke", "--out", "out/smoke"] in commands
    browser = next(c for c in commands if c[0] == "run" and "--browser" in c)
    assert browser[-1] == "--browser" and "--user" in browser  # `...` became the run above


@pytest.mark.parametrize("argv", readme_commands(README.read_text()), ids=" ".join)
def test_every_readme_command_parses(argv: list[str], capsys) -> None:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(f"`fints {' '.join(argv)}` is refused: {capsys.readouterr().err.strip()} ({exit_})")
    assert hasattr(args, "func"), f"`fints {' '.join(argv)}` names no command"


def test_smoke_eval_without_data_uses_the_demo_data_set(tmp_path, monkeypatch, capsys) -> None:
    """No --data: the demo's data set ($FINTS_DATA_DIR here) is generated and used; an
    unknown user then stops the run before anything heavy loads."""
    data = tmp_path / "demo-data"
    monkeypatch.setenv("FINTS_DATA_DIR", str(data))
    code = main(["eval", "--suite", "smoke", "--out", str(tmp_path / "out"), "--users", "nobody"])
    assert code == 2
    assert (data / "products.json").is_file()
    assert "unknown user(s) nobody" in capsys.readouterr().err
