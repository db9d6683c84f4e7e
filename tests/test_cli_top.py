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


def test_every_script_enters_through_the_ctrl_c_guard():
    """Each ``pawlens-<name>`` script is ``pawlens <name>``: it enters through pawlens.cli, whose import of the stage
    runs under the Ctrl-C guard."""
    import pawlens.cli as cli

    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    scripts = {**table["scripts"], **table.get("gui-scripts", {})}
    for name in COMMANDS:
        module, _, attr = scripts[f"pawlens-{name}"].partition(":")
        assert module == "pawlens.cli" and callable(getattr(cli, attr)), (name, scripts[f"pawlens-{name}"])


def test_ctrl_c_while_a_command_imports_exits_130_in_one_line(monkeypatch, capsys):
    """A Ctrl-C in the first second (the stage's imports: torch, timm...) came out as a KeyboardInterrupt traceback."""
    import pawlens.cli as cli

    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.importlib, "import_module", interrupted)
    assert cli.main(["train", "--data", "x"]) == 130
    assert cli.train_main(["--data", "x"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["pawlens-train: interrupted (Ctrl-C) while starting; nothing was written"] * 2
