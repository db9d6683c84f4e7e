"""The top-level ``pawlens`` command: its table of subcommands, the ``pawlens-<name>`` aliases, global flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from pawlens.cli import COMMANDS, main

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def test_every_command_has_its_pawlens_alias_installed():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set(scripts["scripts"]) | set(scripts.get("gui-scripts", {}))
    assert {f"pawlens-{c}" for c in COMMANDS} <= names, sorted({f"pawlens-{c}" for c in COMMANDS} - names)


def test_global_flags_before_the_command_reach_it(capsys):
    with pytest.raises(SystemExit) as e:  # argparse's --help of the subcommand: the flag went through with it
        main(["--debug", "export", "--help"])
    assert e.value.code == 0 and "pawlens-export" in capsys.readouterr().out
    assert main(["--debug"]) == 2 and "needs a command after it" in capsys.readouterr().err
    assert main(["-v", "nope"]) == 2 and "unknown command 'nope'" in capsys.readouterr().err
