"""Configuration (SPEC §4): the documented example, the lookup order, environment
overrides, errors that name the key, and secrets kept out of every message."""

from __future__ import annotations

import logging
import re
import tomllib
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from bot import cli
from bot.settings import ENV_PREFIX, ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"

#: A value no message may ever contain.
SECRET = "S3cr3t-Do-Not-Leak-7f3a"

#: Every secret key of the model, as a TOML snippet setting it to SECRET.
ALL_SECRETS_TOML = f"""
[wecom]
agent_id = 1000002
secret = "{SECRET}-wecom"
token = "{SECRET}-token"
encoding_aes_key = "{SECRET}-aes"
[wecom.aibot]
token = "{SECRET}-aibot-token"
encoding_aes_key = "{SECRET}-aibot-aes"
[dingtalk]
app_secret = "{SECRET}-dingtalk"
"""

pytestmark = pytest.mark.usefixtures("clean_environment")  # no stray configuration (conftest.py)


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text


# --- Walking the model ------------------------------------------------------------------


def _models_in(annotation) -> list[type[BaseModel]]:
    """The BaseModel classes inside an annotation (``X | None``, ``list[X]``…)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def model_keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every leaf key of ``model`` as a path; a ``dict[str, Model]`` level is ``*``."""
    keys = []
    for name, field in model.model_fields.items():
        annotation, path = field.annotation, prefix + (name,)
        if typing.get_origin(annotation) is dict:
            values = typing.get_args(annotation)[1]
            nested = _models_in(values)
            if nested:
                for sub in nested:
                    keys.extend(model_keys(sub, path + ("*",)))
                continue
        nested = _models_in(annotation)
        if nested:
            for sub in nested:
                keys.extend(model_keys(sub, path))
        else:
            keys.append(path)
    return keys


def field_of(path: tuple[str, ...]):
    model: type[BaseModel] = Settings
    field = None
    for part in path:
        if part == "*":
            continue
        field = model.model_fields[part]
        annotation = field.annotation
        if typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
        nested = _models_in(annotation)
        model = nested[0] if nested else model
    return field


def defaults_to_none(path: tuple[str, ...]) -> bool:
    """Whether a key is optional with no value, which TOML cannot write (``agent_id``)."""
    return field_of(path).default is None


def in_toml(data, path: tuple[str, ...]) -> bool:
    if not path:
        return True
    if not isinstance(data, dict):
        return False
    head, rest = path[0], path[1:]
    if head == "*":
        return bool(data) and all(in_toml(value, rest) for value in data.values())
    return head in data and in_toml(data[head], rest)


def env_name(path: tuple[str, ...]) -> str:
    """The variable documented for a key; below a ``*`` it is the whole table's (JSON)."""
    if "*" in path:
        path = path[: path.index("*")]
    return ENV_PREFIX + "__".join(path).upper()


HEADER = re.compile(r"^\[([^\]]+)\]\s*(#.*)?$")
ASSIGNMENT = re.compile(r"^(#\s?)?([a-z_][a-z0-9_]*) = ")


def documented_lines(text: str) -> dict[tuple[str, ...], list[tuple[bool, str]]]:
    """For each ``table.key`` assigned (or shown commented out) in the example:
    (commented out?, the comment block just above it)."""
    lines = text.splitlines()
    table: tuple[str, ...] = ()
    found: dict[tuple[str, ...], list[tuple[bool, str]]] = {}
    for number, line in enumerate(lines):
        if match := HEADER.match(line):
            table = tuple(part.strip().strip('"') for part in match.group(1).split("."))
            continue
        if match := ASSIGNMENT.match(line):
            block = []
            for above in reversed(lines[:number]):
                if not above.startswith("#"):
                    break
                block.append(above)
            found.setdefault(table + (match.group(2),), []).append(
                (bool(match.group(1)), "\n".join(reversed(block))))
    return found


def generalise(path: tuple[str, ...]) -> tuple[str, ...]:
    """``roles.units.U-SPS.leads`` → ``roles.units.*.leads``, as in ``model_keys``."""
    for key in model_keys(Settings):
        if len(key) == len(path) and all(k in ("*", p) for k, p in zip(key, path)):
            return key
    return path


# --- The example file --------------------------------------------------------------------


def test_model_walk_sees_nested_sections():
    keys = set(model_keys(Settings))
    assert ("wecom", "aibot", "token") in keys
    assert ("roles", "units", "*", "accountability") in keys
    assert ("database", "url") in keys and ("dingtalk", "card_template_id") in keys
    assert len(keys) >= 31  # the 31 keys of SPEC §4 when this test was written


def test_example_loads_cleanly():
    settings = load_settings(EXAMPLE)
    assert settings.server.port == 8080
    assert settings.database.url == Settings().database.url
    assert settings.wecom.aibot.callback_path == "/wecom/aibot"
    assert set(settings.roles.units) >= {"U-SPS"}
    unit = next(iter(settings.roles.units.values()))
    assert unit.leads and unit.approvers and unit.accountability


def test_example_shows_the_defaults():
    """The example's values are the built-in defaults (roles aside: they are examples)."""
    example, default = load_settings(EXAMPLE), Settings()
    for section in ("database", "server", "bureau", "dingtalk", "wecom"):
        mine, theirs = getattr(example, section), getattr(default, section)
        for name in type(theirs).model_fields:
            value, expected = getattr(mine, name), getattr(theirs, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value() or None  # secrets are shown as ""
            if isinstance(expected, BaseModel):
                continue
            assert value == expected, f"{section}.{name}"


def test_example_documents_every_key():
    """Each key of the model is in the example (a key added later must be documented)."""
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    shown = documented_lines(EXAMPLE.read_text(encoding="utf-8"))
    shown = {generalise(key): value for key, value in shown.items()}
    missing = []
    for key in model_keys(Settings):
        if in_toml(data, key):
            continue
        # A key whose default is "no value" may be shown commented out (TOML has no null).
        if defaults_to_none(key) and any(commented for commented, _ in shown.get(key, [])):
            continue
        missing.append(".".join(key))
    assert not missing, f"config.example.toml does not document: {missing}"


def test_example_comments_each_key_in_chinese_with_its_variable():
    shown = {}
    for key, value in documented_lines(EXAMPLE.read_text(encoding="utf-8")).items():
        shown.setdefault(generalise(key), []).extend(value)
    for key in model_keys(Settings):
        blocks = [block for _, block in shown.get(key, [])]
        dotted = ".".join(key)
        assert blocks, dotted
        for block in blocks:
            assert re.search(r"[\u4e00-\u9fff]", block), f"{dotted}: no Chinese comment"
            assert "默认" in block, f"{dotted}: comment does not give the default"
            assert env_name(key) in block, f"{dotted}: comment does not name {env_name(key)}"


def test_example_keeps_secrets_empty():
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    for key in model_keys(Settings):
        if field_of(key).annotation == (SecretStr | None) and in_toml(data, key):
            value = data
            for part in key:
                value = value[part]
            assert value == "", ".".join(key)


def test_example_commented_out_values_are_valid(tmp_path):
    """Uncommenting a key shown commented out gives a valid configuration."""
    text = EXAMPLE.read_text(encoding="utf-8")
    uncommented = re.sub(r"^#\s?([a-z_][a-z0-9_]* = )", r"\1", text, flags=re.M)
    assert uncommented != text
    settings = load_settings(write(tmp_path / "all.toml", uncommented))
    assert settings.wecom.agent_id is not None


def test_example_explains_user_id_forms():
    text = EXAMPLE.read_text(encoding="utf-8")
    for form in ('"wecom:', '"dingtalk:', '"console:'):
        assert form in text
    assert "所有平台" in text
    assert "[roles.units." in text


# --- Lookup order: -c > $SHUANGSUI_CONFIG > ./config.toml > defaults ------------------------


def test_lookup_order(tmp_path, monkeypatch):
    write(tmp_path / "config.toml", "[server]\nport = 1001\n")
    write(tmp_path / "from-env.toml", "[server]\nport = 1002\n")
    write(tmp_path / "explicit.toml", "[server]\nport = 1003\n")

    monkeypatch.setenv("SHUANGSUI_CONFIG", str(tmp_path / "from-env.toml"))
    assert load_settings(tmp_path / "explicit.toml").server.port == 1003
    assert load_settings(str(tmp_path / "explicit.toml")).server.port == 1003
    assert load_settings().server.port == 1002

    monkeypatch.delenv("SHUANGSUI_CONFIG")
    assert load_settings().server.port == 1001

    (tmp_path / "config.toml").unlink()
    assert load_settings().server.port == Settings.model_fields["server"].default.port == 8080


def test_config_toml_is_looked_up_in_the_working_directory(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write(tmp_path / "config.toml", "[bureau]\nname = \"甲区市场监督管理局\"\n")
    monkeypatch.chdir(elsewhere)
    assert load_settings().bureau.name == Settings().bureau.name
    monkeypatch.chdir(tmp_path)
    assert load_settings().bureau.name == "甲区市场监督管理局"


def test_named_file_must_exist(tmp_path, monkeypatch):
    """A file named by -c or $SHUANGSUI_CONFIG is never silently replaced by defaults."""
    write(tmp_path / "config.toml", "[server]\nport = 1001\n")
    monkeypatch.setenv("SHUANGSUI_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError, match="gone.toml"):
        load_settings()
    with pytest.raises(ConfigError, match="missing.toml"):
        load_settings(tmp_path / "missing.toml")


# --- Environment overrides ------------------------------------------------------------------


def test_environment_beats_the_file(tmp_path, monkeypatch):
    path = write(tmp_path / "c.toml", """
[database]
url = "sqlite:///from-file.db"
echo = true
[server]
port = 1001
host = "0.0.0.0"
[wecom.aibot]
token = "file-token"
encoding_aes_key = "file-aes"
[roles]
admins = ["z"]
supervisors = ["s"]
""")
    monkeypatch.setenv("SHUANGSUI__DATABASE__URL", "postgresql+psycopg://db.example/shuangsui")
    monkeypatch.setenv("SHUANGSUI__SERVER__PORT", "9090")
    monkeypatch.setenv("SHUANGSUI__WECOM__AIBOT__TOKEN", "env-token")
    monkeypatch.setenv("SHUANGSUI__ROLES__ADMINS", '["a","b"]')
    settings = load_settings(path)
    assert settings.database.url == "postgresql+psycopg://db.example/shuangsui"
    assert settings.server.port == 9090
    assert settings.wecom.aibot.token.get_secret_value() == "env-token"
    assert settings.roles.admins == ["a", "b"]
    # Keys the environment does not name keep the file's values.
    assert settings.database.echo is True
    assert settings.server.host == "0.0.0.0"
    assert settings.wecom.aibot.encoding_aes_key.get_secret_value() == "file-aes"
    assert settings.roles.supervisors == ["s"]


def test_environment_applies_without_a_file(monkeypatch):
    monkeypatch.setenv("SHUANGSUI__SERVER__PORT", "9091")
    monkeypatch.setenv("shuangsui__bureau__default_lead", "U-XYS")  # not case-sensitive
    settings = load_settings()
    assert settings.server.port == 9091
    assert settings.bureau.default_lead == "U-XYS"


def test_environment_sets_unit_roles_as_json(tmp_path, monkeypatch):
    """The form config.example.toml documents; unit ids keep their case."""
    path = write(tmp_path / "c.toml", '[roles.units.U-SPS]\nleads = ["from-file"]\n')
    monkeypatch.setenv("SHUANGSUI__ROLES__UNITS",
                       '{"U-SPS": {"leads": ["wecom:a"]}, "U-JT": {"approvers": ["dingtalk:b"]}}')
    units = load_settings(path).roles.units
    assert units["U-SPS"].leads == ["wecom:a"]
    assert units["U-JT"].approvers == ["dingtalk:b"]


def test_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("SHUANGSUI__SERVER__PORT", "abc")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "server.port" in str(caught.value)
    assert "SHUANGSUI__SERVER__PORT" in str(caught.value)


# --- Errors name the key or the file ------------------------------------------------------------


def test_malformed_value_names_the_key(tmp_path):
    path = write(tmp_path / "c.toml", '[server]\nport = "abc"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "server.port" in message
    assert "SHUANGSUI__SERVER__PORT" in message


@pytest.mark.parametrize("key", ["daily_at", "weekly_at"])
@pytest.mark.parametrize("value", ["17:30:00", "9:30", "24:00", "17.30", "17:30 "])
def test_summary_times_are_exactly_hh_mm(tmp_path, key, value):
    """SPEC §4: ``[summaries] daily_at``/``weekly_at`` are exactly HH:MM; ``17:30:00`` used to
    pass here and crash the scheduler at start."""
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path / "c.toml", f'[summaries]\n{key} = "{value}"\n'))
    assert f"summaries.{key}" in str(caught.value) and "HH:MM" in str(caught.value)
    assert load_settings(write(tmp_path / "ok.toml", f'[summaries]\n{key} = "07:05"\n')).summaries


def test_out_of_range_port_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_settings(write(tmp_path / "c.toml", "[server]\nport = 70000\n"))


def test_unknown_section_names_the_typo(tmp_path):
    path = write(tmp_path / "c.toml", '[databse]\nurl = "sqlite:///x.db"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "databse" in str(caught.value)
    assert "config.example.toml" in str(caught.value)


def test_unknown_nested_key_names_the_typo(tmp_path):
    path = write(tmp_path / "c.toml", '[wecom.aibot]\ncalback_path = "/x"\n')
    with pytest.raises(ConfigError, match=r"wecom\.aibot\.calback_path"):
        load_settings(path)


def test_bad_unit_roles_name_the_unit(tmp_path):
    path = write(tmp_path / "c.toml", '[roles.units.U-SPS]\nleads = "lead-example"\n')
    with pytest.raises(ConfigError, match=r"roles\.units\.U-SPS\.leads"):
        load_settings(path)


def test_every_bad_key_is_reported(tmp_path):
    path = write(tmp_path / "c.toml", '[server]\nport = "abc"\n[database]\necho = "perhaps"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "server.port" in str(caught.value) and "database.echo" in str(caught.value)


def test_bad_toml_names_the_file(tmp_path):
    path = write(tmp_path / "broken.toml", "[server\nport = 8080\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(path) in str(caught.value)


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(path) in str(caught.value)


# --- Secrets never leak ---------------------------------------------------------------------------


def test_secrets_not_in_repr_or_str(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUANGSUI__WECOM__AIBOT__TOKEN", f"{SECRET}-from-env")
    settings = load_settings(write(tmp_path / "c.toml", ALL_SECRETS_TOML))
    assert settings.dingtalk.app_secret.get_secret_value() == f"{SECRET}-dingtalk"
    assert settings.wecom.aibot.token.get_secret_value() == f"{SECRET}-from-env"
    assert_no_secret(repr(settings), str(settings), repr(settings.wecom), str(settings.wecom.aibot),
                     repr(settings.dingtalk), settings.model_dump_json())


@pytest.mark.parametrize("text", [
    # A bad value beside the secrets.
    ALL_SECRETS_TOML + '[server]\nport = "abc"\n',
    # A secret of the wrong type: the bad value is itself the secret.
    f'[wecom]\nsecret = ["{SECRET}"]\n',
    f'[dingtalk]\napp_secret = {{ value = "{SECRET}" }}\n',
    # A misspelt secret key.
    f'[wecom]\nsecert = "{SECRET}"\n',
    f'[wecom.aibot]\ntokn = "{SECRET}"\n',
    # A secret where a section should be.
    f'wecom = "{SECRET}"\n',
    # Broken TOML on the secret's own line.
    f'[wecom]\nsecret = "{SECRET}\n',
    f'[wecom]\nsecret = {SECRET}\n',
    f'[dingtalk]\napp_secret = "{SECRET}" trailing\n',
])
def test_secrets_not_in_config_errors(tmp_path, text):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path / "c.toml", text))
    assert_no_secret(str(caught.value), repr(caught.value))
    assert caught.value.__cause__ is None or SECRET not in str(caught.value.__cause__)


def test_secret_not_in_error_from_environment(monkeypatch):
    monkeypatch.setenv("SHUANGSUI__DINGTALK__APP_SECRET", SECRET)
    monkeypatch.setenv("SHUANGSUI__SERVER__PORT", "abc")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "server.port" in str(caught.value)
    assert_no_secret(str(caught.value))


# --- The readable-file warning --------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o640])
def test_warns_when_a_file_with_secrets_is_readable_by_others(tmp_path, caplog, mode):
    path = write(tmp_path / "c.toml", ALL_SECRETS_TOML, mode)
    with caplog.at_level(logging.WARNING, logger="bot.settings"):
        load_settings(path)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert str(path) in message and "chmod 600" in message
    assert_no_secret(caplog.text, message)


@pytest.mark.parametrize("secret_line", [
    f'[wecom]\nagent_id = 1000002\nsecret = "{SECRET}"\n',
    f'[wecom.aibot]\nencoding_aes_key = "{SECRET}"\n',
    f'[dingtalk]\napp_secret = "{SECRET}"\n',
])
def test_any_single_secret_triggers_the_warning(tmp_path, caplog, secret_line):
    path = write(tmp_path / "c.toml", secret_line, 0o644)
    with caplog.at_level(logging.WARNING, logger="bot.settings"):
        load_settings(path)
    assert str(path) in caplog.text
    assert_no_secret(caplog.text)


def test_no_warning_for_a_private_file(tmp_path, caplog):
    path = write(tmp_path / "c.toml", ALL_SECRETS_TOML, 0o600)
    with caplog.at_level(logging.DEBUG, logger="bot.settings"):
        load_settings(path)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert_no_secret(caplog.text)


def test_no_warning_for_a_readable_file_without_secrets(tmp_path, caplog):
    path = write(tmp_path / "c.toml", "[server]\nport = 8081\n", 0o644)
    with caplog.at_level(logging.WARNING, logger="bot.settings"):
        load_settings(path)
    assert not caplog.records


# --- Edge cases found in review: empty secrets, env-only secrets, URL passwords, env typos ---


def test_example_copied_readable_does_not_warn(tmp_path, caplog):
    """The example shows secrets as "" (not set); a 0644 copy holds no secret."""
    path = write(tmp_path / "config.toml", EXAMPLE.read_text(encoding="utf-8"), 0o644)
    with caplog.at_level(logging.WARNING, logger="bot.settings"):
        settings = load_settings(path)
    assert not caplog.records
    assert settings.wecom.secret is None


def test_secret_from_environment_does_not_blame_the_file(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SHUANGSUI__WECOM__SECRET", SECRET)
    monkeypatch.setenv("SHUANGSUI__WECOM__AGENT_ID", "1000002")
    path = write(tmp_path / "c.toml", "[server]\nport = 8081\n", 0o644)
    with caplog.at_level(logging.WARNING, logger="bot.settings"):
        load_settings(path)
    assert not caplog.records


def test_database_password_is_a_secret(tmp_path, caplog):
    url = f"postgresql+psycopg://shuangsui:{SECRET}@db.example:5432/shuangsui"
    path = write(tmp_path / "c.toml", f'[database]\nurl = "{url}"\n', 0o644)
    with caplog.at_level(logging.WARNING, logger="bot.settings"):
        settings = load_settings(path)
    assert settings.database.url == url
    assert_no_secret(repr(settings), str(settings))
    assert str(path) in caplog.text


def test_non_json_list_in_environment_is_a_config_error(monkeypatch):
    monkeypatch.setenv("SHUANGSUI__ROLES__ADMINS", "a,b")
    with pytest.raises(ConfigError, match="SHUANGSUI__ROLES__ADMINS"):
        load_settings()


@pytest.mark.parametrize("name", ["SHUANGSUI__DATABSE__URL", "SHUANGSUI__SERVER__PROT",
                                  "SHUANGSUI__WECOM__AIBOT__TOKN", "SHUANGSUI__ROLES__UNITS__U1__LEAD"])
def test_misspelt_environment_variable_is_a_config_error(monkeypatch, name):
    monkeypatch.setenv(name, "x")
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_correct_environment_variables_are_accepted(monkeypatch):
    """Every documented variable (and a unit's own key) is a known key."""
    valid = {("draw", "team_size"): "2",  # "1" would break art. 14
             ("reminders", "working_hours"): "08:30-17:30", ("summaries", "daily_at"): "17:30",
             ("summaries", "weekly_at"): "17:00", ("summaries", "weekly_on"): "fri", ("dingtalk", "mode"): "stream"}
    for key in model_keys(Settings):
        if "*" not in key:
            value = "[]" if typing.get_origin(field_of(key).annotation) is list else "1"
            monkeypatch.setenv(env_name(key), valid.get(key, value))
    monkeypatch.setenv("SHUANGSUI__ROLES__UNITS__U1__LEADS", '["a"]')
    monkeypatch.setenv("SHUANGSUI__SERVER__PORT", "8081")
    monkeypatch.setenv("SHUANGSUI__DATABASE__ECHO", "true")
    settings = load_settings()
    assert settings.server.port == 8081 and settings.roles.units["u1"].leads == ["a"]


def test_unreadable_path_is_a_config_error(tmp_path):
    (tmp_path / "a-directory.toml").mkdir()
    with pytest.raises(ConfigError, match="a-directory.toml"):
        load_settings(tmp_path / "a-directory.toml")


# --- The command line ---------------------------------------------------------------------------


def test_cli_reports_a_bad_key_on_stderr(tmp_path, capsys):
    bad = write(tmp_path / "bad.toml", ALL_SECRETS_TOML + '[server]\nport = "abc"\n')
    assert cli.main(["-c", str(bad), "db", "upgrade"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "server.port" in err and "SHUANGSUI__SERVER__PORT" in err
    assert_no_secret(out, err)
    assert not (tmp_path / "shuangsui.db").exists()


def test_cli_reports_an_unknown_section_and_a_missing_file(tmp_path, capsys):
    typo = write(tmp_path / "typo.toml", '[databse]\nurl = "sqlite:///x.db"\n')
    assert cli.main(["--config", str(typo), "db", "upgrade"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "databse" in err

    assert cli.main(["-c", str(tmp_path / "gone.toml"), "db", "upgrade"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "gone.toml" in err


def test_cli_uses_shuangsui_config(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SHUANGSUI_CONFIG", str(write(tmp_path / "bad.toml", "[server]\nport = 0\n")))
    assert cli.main(["db", "upgrade"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "server.port" in err


# --- [draw] and [security] ------------------------------------------------------------------


def fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


#: Not a Fernet key; the error must not echo it.
BAD_KEY = f"{SECRET}-not-a-fernet-key"


def test_draw_and_security_defaults_are_shown_in_the_example():
    default, example = Settings(), load_settings(EXAMPLE)
    assert default.draw.team_size == 2 and default.draw.slack == 1
    assert default.draw.frequency_cap == 0 and default.draw.frequency_window_days == 0
    assert default.draw.frequency_exempt == [] and default.security.keys == []
    assert set(default.draw.risk_weights.model_dump().values()) == {0}
    assert example.draw == default.draw
    assert example.security.keys == []


def test_risk_weight_names_match_the_rules():
    from dataclasses import fields

    from bot.rules.risk import RiskWeights
    from bot.rules.scope import RISK_NAMES
    from bot.settings import RISK_TAGS, RiskWeightSettings

    assert list(RiskWeightSettings.model_fields) == [field.name for field in fields(RiskWeights)]
    assert RiskWeights(**Settings().draw.risk_weights.model_dump()) == RiskWeights()
    assert set(RISK_TAGS) == set(RISK_NAMES)


def test_example_keeps_security_keys_empty():
    assert tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))["security"]["keys"] == []


@pytest.mark.parametrize(("text", "key", "env"), [
    ("[draw]\nteam_size = 1\n", "draw.team_size", "SHUANGSUI__DRAW__TEAM_SIZE"),
    ("[draw]\nslack = -1\n", "draw.slack", "SHUANGSUI__DRAW__SLACK"),
    ("[draw]\nfrequency_cap = -1\n", "draw.frequency_cap", "SHUANGSUI__DRAW__FREQUENCY_CAP"),
    ("[draw]\nfrequency_window_days = -7\n", "draw.frequency_window_days", "SHUANGSUI__DRAW__FREQUENCY_WINDOW_DAYS"),
    ("[draw.risk_weights]\nabnormal = 10\n", "draw.risk_weights.abnormal",
     "SHUANGSUI__DRAW__RISK_WEIGHTS__ABNORMAL"),
    ("[draw.risk_weights]\nper_complaint = -1\n", "draw.risk_weights.per_complaint",
     "SHUANGSUI__DRAW__RISK_WEIGHTS__PER_COMPLAINT"),
    ("[draw.risk_weights]\nkey_sectr = 1\n", "draw.risk_weights.key_sectr", None),
])
def test_bad_draw_values_name_the_key(tmp_path, text, key, env):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path / "c.toml", text))
    assert key in str(caught.value)
    assert env is None or env in str(caught.value)


def test_draw_values_in_range_are_taken(tmp_path):
    settings = load_settings(write(tmp_path / "c.toml", """
[draw]
team_size = 3
slack = 0
frequency_cap = 2
frequency_window_days = 365
frequency_exempt = ["abnormal", "Key_Sector", "abnormal"]
[draw.risk_weights]
per_complaint = 1
complaints_max = 3
serious_violation = 9
"""))
    draw = settings.draw
    assert (draw.team_size, draw.slack, draw.frequency_cap, draw.frequency_window_days) == (3, 0, 2, 365)
    assert draw.frequency_exempt == ["abnormal", "key_sector"]
    assert draw.risk_weights.model_dump() == {"per_complaint": 1, "complaints_max": 3, "abnormal": 0,
                                              "serious_violation": 9, "key_sector": 0}


def test_unknown_frequency_exempt_tag_is_refused(tmp_path):
    path = write(tmp_path / "c.toml", '[draw]\nfrequency_exempt = ["abnormal", "complaint"]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "draw.frequency_exempt" in message and "SHUANGSUI__DRAW__FREQUENCY_EXEMPT" in message
    assert "complaint" in message and "serious_violation" in message  # the culprit and the choices


def test_environment_overrides_nested_risk_weights(tmp_path, monkeypatch):
    path = write(tmp_path / "c.toml", "[draw.risk_weights]\nper_complaint = 2\nabnormal = 1\n")
    monkeypatch.setenv("SHUANGSUI__DRAW__RISK_WEIGHTS__ABNORMAL", "3")
    monkeypatch.setenv("SHUANGSUI__DRAW__TEAM_SIZE", "4")
    monkeypatch.setenv("SHUANGSUI__DRAW__FREQUENCY_EXEMPT", '["serious_violation"]')
    settings = load_settings(path)
    assert settings.draw.risk_weights.abnormal == 3
    assert settings.draw.risk_weights.per_complaint == 2  # the file's, untouched
    assert settings.draw.team_size == 4 and settings.draw.frequency_exempt == ["serious_violation"]


def test_bad_risk_weight_from_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("SHUANGSUI__DRAW__RISK_WEIGHTS__KEY_SECTOR", "12")
    with pytest.raises(ConfigError, match="SHUANGSUI__DRAW__RISK_WEIGHTS__KEY_SECTOR"):
        load_settings()


@pytest.mark.parametrize("name", ["SHUANGSUI__DRAW__RISK_WEIGHTS__ABNORMAL", "SHUANGSUI__SECURITY__KEYS",
                                  "shuangsui__draw__risk_weights__key_sector"])
def test_environment_check_knows_the_new_keys(monkeypatch, name):
    from bot.settings import check_environment

    monkeypatch.setenv(name, "[]" if name.endswith("KEYS") else "1")
    check_environment()


@pytest.mark.parametrize("name", ["SHUANGSUI__DRAW__RISK_WEIGHTS__ABNORML", "SHUANGSUI__DRAW__RISK__ABNORMAL",
                                  "SHUANGSUI__SECURITY__KEY", "SHUANGSUI__SECURTY__KEYS"])
def test_misspelt_new_variables_are_refused(monkeypatch, name):
    monkeypatch.setenv(name, "1")
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_security_keys_from_file_and_environment(tmp_path, monkeypatch):
    first, second = fernet_key(), fernet_key()
    settings = load_settings(write(tmp_path / "c.toml", f'[security]\nkeys = ["{first}\\n", "{second}"]\n'))
    assert [key.get_secret_value() for key in settings.security.keys] == [first, second]
    assert first not in repr(settings) and first not in str(settings.security)
    assert first not in settings.model_dump_json()

    monkeypatch.setenv("SHUANGSUI__SECURITY__KEYS", f'["{second}"]')
    assert [key.get_secret_value() for key in load_settings(tmp_path / "c.toml").security.keys] == [second]


@pytest.mark.parametrize("make", [
    lambda good: [BAD_KEY],
    lambda good: [good, BAD_KEY],  # the second one is named by its position
    lambda good: [good[:-2] + "="],  # a key one character short
    lambda good: [""],
], ids=["not-base64", "second", "short", "empty"])
def test_bad_fernet_key_is_refused_without_echoing_it(tmp_path, make):
    good = fernet_key()
    keys = make(good)
    text = "[security]\nkeys = [" + ", ".join(f'"{key}"' for key in keys) + "]\n"
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path / "c.toml", text))
    message = str(caught.value)
    assert "security.keys" in message and "SHUANGSUI__SECURITY__KEYS" in message
    assert f"第 {len(keys)} 个" in message and "Fernet.generate_key()" in message
    assert_no_secret(message, repr(caught.value))
    for key in [good, *keys]:
        assert not key or key not in message


def test_bad_fernet_key_from_environment_is_not_echoed(monkeypatch):
    monkeypatch.setenv("SHUANGSUI__SECURITY__KEYS", f'["{BAD_KEY}"]')
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "security.keys" in str(caught.value)
    assert_no_secret(str(caught.value))


def test_security_keys_not_json_in_environment(monkeypatch):
    """A bare key (not a JSON array) names the variable and does not echo the key."""
    key = fernet_key()
    monkeypatch.setenv("SHUANGSUI__SECURITY__KEYS", key)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "SHUANGSUI__SECURITY__KEYS" in str(caught.value)
    assert key not in str(caught.value)


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_warns_when_a_file_with_security_keys_is_readable(tmp_path, caplog, mode):
    key = fernet_key()
    path = write(tmp_path / "c.toml", f'[security]\nkeys = ["{key}"]\n', mode)
    with caplog.at_level(logging.WARNING, logger="bot.settings"):
        load_settings(path)
    assert str(path) in caplog.text and "chmod 600" in caplog.text
    assert key not in caplog.text


def test_no_warning_for_empty_security_keys_or_keys_from_environment(tmp_path, monkeypatch, caplog):
    path = write(tmp_path / "c.toml", "[security]\nkeys = []\n[draw]\nteam_size = 3\n", 0o644)
    monkeypatch.setenv("SHUANGSUI__SECURITY__KEYS", f'["{fernet_key()}"]')
    with caplog.at_level(logging.WARNING, logger="bot.settings"):
        load_settings(path)
    assert not caplog.records


def test_holds_secrets_sees_a_list_of_secrets():
    from bot.settings import holds_secrets

    assert holds_secrets({"security": {"keys": ["x"]}})
    assert not holds_secrets({"security": {"keys": []}})
    assert not holds_secrets({"draw": {"frequency_exempt": ["abnormal"]}, "roles": {"admins": ["a"]}})


def test_secrets_from_a_credentials_directory(tmp_path, monkeypatch, caplog):
    """One file per key, named like its variable (systemd's LoadCredential= works the same);
    the file beats config.toml, the environment beats the file; loose permissions warn."""
    from storage.sealing import new_key

    folder = tmp_path / "credentials"
    folder.mkdir()
    key = new_key()
    for name, value, mode in (("SHUANGSUI__WECOM__SECRET", "from-credentials\n", 0o600),
                              ("SHUANGSUI__DINGTALK__APP_SECRET", "ding-secret", 0o644),
                              ("SHUANGSUI__SECURITY__KEYS", f'["{key}"]', 0o400),
                              ("README", "not a credential", 0o644)):
        (folder / name).write_text(value, encoding="utf-8")
        (folder / name).chmod(mode)
    config = tmp_path / "config.toml"
    config.write_text('[wecom]\nsecret = ""\ncorp_id = "ww1"\nagent_id = 1000002\n', encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(folder))
    with caplog.at_level(logging.WARNING, logger="bot.settings"):
        settings = load_settings(config)
    assert settings.wecom.secret.get_secret_value() == "from-credentials"
    assert settings.wecom.corp_id == "ww1" and settings.security.keys[0].get_secret_value() == key
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "SHUANGSUI__DINGTALK__APP_SECRET" in warned[0] and "ding-secret" not in warned[0]
    monkeypatch.setenv("SHUANGSUI__WECOM__SECRET", "from-environment")
    assert load_settings(config).wecom.secret.get_secret_value() == "from-environment"
    (folder / "SHUANGSUI__WECOM__SECRTE").write_text("typo", encoding="utf-8")
    with pytest.raises(ConfigError, match="SHUANGSUI__WECOM__SECRTE"):
        load_settings(config)


def test_a_credentials_directory_that_is_not_there_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SHUANGSUI_CREDENTIALS", str(tmp_path / "gone"))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "gone" in str(caught.value) and "SHUANGSUI_CREDENTIALS" in str(caught.value)


def test_a_credential_that_is_not_json_names_its_file(tmp_path, monkeypatch):
    folder = tmp_path / "credentials"
    folder.mkdir()
    write(folder / "SHUANGSUI__SECURITY__KEYS", f"{SECRET}-not-json")
    write(folder / "SHUANGSUI__SERVER__PORT", "8082")
    monkeypatch.setenv("SHUANGSUI_CREDENTIALS", str(folder))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "SHUANGSUI__SECURITY__KEYS" in str(caught.value)
    assert_no_secret(str(caught.value), repr(caught.value))
    (folder / "SHUANGSUI__SECURITY__KEYS").unlink()
    assert load_settings().server.port == 8082
