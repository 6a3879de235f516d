"""The command line's shape (bot/cli/): every command runs through the function its
family registered, ``--now`` reads bureau time, the families import no circle, and a
command that does not serve loads no server stack, workbook or chart library."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot import cli
from bot.cli import options
from bot.settings import Settings

PACKAGE = Path(cli.__file__).resolve().parent

#: One valid command line of each command but ``verify`` (which needs no configuration).
COMMANDS = {
    "demo": ["demo"], "serve": ["serve"], "db": ["db", "upgrade"], "import": ["import", "units", "u.csv"],
    "batch": ["batch", "draw", "批次=B1"], "plan": ["plan", "list"], "public": ["public", "results", "--out", "r.csv"],
    "keys": ["keys", "rotate"], "audit": ["audit", "verify"], "reminders": ["reminders", "list"],
    "summaries": ["summaries", "send", "daily"],
}


def test_every_command_runs_through_its_family():
    parser = cli.build_parser()
    listed = set(parser.format_usage().partition("{")[2].partition("}")[0].split(","))  # what the help lists
    assert listed == set(COMMANDS) | {"verify"}
    for command, argv in COMMANDS.items():
        run = parser.parse_args(argv).run
        assert callable(run) and run.__module__.startswith("bot.cli."), command
    assert not hasattr(parser.parse_args(["verify", "site"]), "run")


def test_now_without_an_offset_is_bureau_time():
    settings = Settings(bureau={"timezone": "Asia/Shanghai"})
    naive = options.instant("2026-12-10T09:30")
    assert options.as_of(settings, naive) == datetime(2026, 12, 10, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    utc = options.instant("2026-12-10T01:30+00:00")
    assert options.as_of(settings, utc).utcoffset() == timedelta(0)
    assert options.as_of(settings, None).tzinfo is not None


def test_a_bad_instant_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["reminders", "run", "--now", "yesterday"])
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and out == "" and "yesterday" in err


def test_the_families_import_each_other_never_the_package():
    """``bot/cli/__init__.py`` imports the families: a family importing the package would be a circle."""
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    for path in PACKAGE.glob("*.py"):
        if path.stem in ("__init__", "__main__"):
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "bot.cli":
                assert {alias.name for alias in node.names} <= modules, path.name
            if isinstance(node, ast.Import):
                assert all(alias.name != "bot.cli" for alias in node.names), path.name


def test_the_command_line_loads_no_server_workbook_or_chart():
    probe = ("import sys, bot.cli; bot.cli.build_parser(); "
             "print(sorted(m for m in ('bot.app', 'aiohttp', 'openpyxl', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [*COMMANDS, "verify"])
def test_a_command_line_naming_its_command_parses_as_the_whole_parser(command):
    """The short path (only the named command's family) reads a command line exactly as the whole
    parser does, with the configuration before or after the command."""
    argv = COMMANDS.get(command, ["verify", "site"])
    for line in (argv, ["-c", "x.toml", *argv], ["--config=x.toml", *argv], [*argv, "--config", "x.toml"]):
        assert cli.command_of(line) == command
        whole, short = vars(cli.build_parser().parse_args(line)), vars(cli.build_parser(command).parse_args(line))
        assert short == whole, line


@pytest.mark.parametrize("argv", [[], ["--help"], ["-h", "import"], ["--verbose", "import"], ["imprt", "units"],
                                  ["-c"], ["-c", "import"]])
def test_help_or_anything_unclear_takes_the_whole_parser(argv):
    assert cli.command_of(argv) is None


def test_an_import_loads_only_its_family_and_the_help_lists_every_command():
    probe = ("import sys, bot.cli; bot.cli.build_parser(bot.cli.command_of(['import', 'objects', 'f.csv'])); "
             "print(sorted(m for m in sys.modules if m.startswith(('bot.cli.', 'alembic', 'bot.batches'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['bot.cli.imports', 'bot.cli.options']"
    shown = subprocess.run([sys.executable, "-m", "bot.cli", "--help"], capture_output=True, text=True, check=True)
    listed = set(shown.stdout.partition("{")[2].partition("}")[0].split(","))
    assert listed == set(COMMANDS) | {"verify"}
    for command in COMMANDS:
        assert command in shown.stdout.partition("}")[2], command  # each with its help line


def test_a_directory_import_loads_neither_the_plans_rules_nor_the_verifier():
    """Start-up of ``import objects`` (issue 20): bot.plans (its draw counts, the outbox) is
    imported for ``import plans`` alone, the verifier for ``verify`` alone."""
    probe = ("import sys, bot.cli, bot.cli.imports; bot.cli.build_parser(bot.cli.command_of(['import', 'objects', "
             "'f.csv'])); print(sorted(m for m in ('bot.plans', 'bot.plan_frequency', 'bot.verifier', "
             "'storage.outbox') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("argv", [
    ["-c", "x.toml", "import", "units", "f.csv"],
    ["import", "units", "f.csv", "-c", "x.toml"],
    ["import", "units", "--config", "x.toml", "f.csv"],
    ["plan", "list", "--config=x.toml"],
    ["plan", "-c", "x.toml", "list"],
    ["db", "upgrade", "-c", "x.toml"],
    ["reminders", "run", "--now", "2026-12-10T09:30", "-c", "x.toml"],
])
def test_the_config_is_taken_before_or_after_the_subcommand(argv):
    """SPEC §3: every command takes ``-c/--config FILE`` before or after the subcommand."""
    assert cli.build_parser().parse_args(argv).config == "x.toml"
    without = [a for a in argv if "x.toml" not in a and a not in ("-c", "--config")]
    assert cli.build_parser().parse_args(without).config is None


def test_the_config_after_a_batch_command_is_read_and_not_an_argument(tmp_path, monkeypatch, capsys):
    """``batch new key=value … -c FILE``: the file is the configuration, not a chat argument."""
    config = tmp_path / "x.toml"
    config.write_text('[databse]\nurl = "sqlite://"\n', encoding="utf-8")  # a misspelt key: exit 2 naming it
    monkeypatch.delenv("SHUANGSUI_CONFIG", raising=False)
    assert cli.main(["batch", "new", "名称=x", "-c", str(config)]) == 2
    assert "databse" in capsys.readouterr().err
    assert cli.main(["import", "units", "f.csv", "-c", str(config)]) == 2
    assert "databse" in capsys.readouterr().err
