"""``continuum --help`` / ``--version``, and every command module the CLI lists is importable."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

import continuum_nb
from continuum_nb import cli

# The commands `continuum --help` shows (gen-migration is registered by the migrate module).
_COMMANDS = ("demo", "db", "migrate", "gen-migration", "partitions", "runs", "worker", "health", "doctor")


def _continuum(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "continuum_nb", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("name", cli._COMMAND_MODULES)
def test_every_listed_command_module_imports_and_registers(name: str) -> None:
    module = importlib.import_module(name)
    assert callable(module.register)


def test_help_lists_every_command() -> None:
    proc = _continuum("--help")
    assert proc.returncode == 0, proc.stderr
    # argparse indents each subcommand by four spaces; help text that wraps is indented further.
    listed = [
        line.split()[0]
        for line in proc.stdout.splitlines()
        if line[:4] == "    " and line[4:5].strip()
    ]
    assert listed == list(_COMMANDS), proc.stdout


def test_version_prints_the_package_version() -> None:
    proc = _continuum("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"continuum {continuum_nb.__version__}"


def test_a_command_module_that_does_not_import_fails_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = "continuum_nb.commands.no_such_command"
    monkeypatch.setattr(cli, "_COMMAND_MODULES", (*cli._COMMAND_MODULES, missing))
    with pytest.raises(ModuleNotFoundError) as info:
        cli.build_parser()
    assert info.value.name == missing
