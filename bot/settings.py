"""Configuration: a TOML file, overridden key by key by a credentials directory and by
``SHUANGSUI__SECTION__KEY``.

SPEC §4 is the contract. The file is found as ``-c FILE``, then ``$SHUANGSUI_CONFIG``,
then ``./config.toml``, then built-in defaults. pydantic-settings reads the three
sources (its TOML source, its nested secrets source, its environment source); this
module adds what the contract asks beyond them: errors that name the key and the
variable that sets it, refusing a variable or credential file that names no key, and a
warning when a file holding secrets is readable by others. Secrets are ``SecretStr``
so that they never reach a log line or a ``repr``.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import re
import stat
import tomllib
import typing
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.texts import say

log = logging.getLogger(__name__)

ENV_PREFIX = "SHUANGSUI__"


#: The error type of a key that another key needs (``describe_errors`` names the missing one).
NEEDED_WITH = "needed_with"


def needed_with(key: str, given: str) -> PydanticCustomError:
    """A section's error: ``key`` must be set because ``given`` is."""
    return PydanticCustomError(NEEDED_WITH, "{key} is needed with {given}", {"key": key, "given": given})


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        """``secret = ""`` (as config.example.toml shows it) means "not set", like leaving it out."""
        assert info.field_name is not None  # a field validator
        if value == "" and cls.model_fields[info.field_name].default is None:
            return None
        return value


def url_password(url: str) -> str | None:
    try:
        return make_url(url).password
    except ArgumentError:
        return None


def hide_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "***"


class DatabaseSettings(Section):
    url: str = "sqlite:///shuangsui.db"
    echo: bool = False

    def __repr_args__(self):
        # A PostgreSQL password in the URL is a secret: never in a repr, str or log line.
        for name, value in super().__repr_args__():
            yield name, (hide_password(value) if name == "url" else value)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_base_url: str = "http://127.0.0.1:8080"
    metrics_from: list[str] = []  # addresses or networks besides loopback that may read GET /metrics

    @field_validator("metrics_from")
    @classmethod
    def _networks(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(say("config", "bad_network", value=entry)) from None
        return [entry.strip() for entry in entries]


class BureauSettings(Section):
    name: str = "某区市场监督管理局"
    timezone: str = "Asia/Shanghai"
    default_lead: str = ""


class WeComAIBotSettings(Section):
    token: SecretStr | None = None
    encoding_aes_key: SecretStr | None = None
    callback_path: str = "/wecom/aibot"


class WeComSettings(Section):
    corp_id: str = ""
    agent_id: int | None = None
    secret: SecretStr | None = None
    token: SecretStr | None = None
    encoding_aes_key: SecretStr | None = None
    api_base: str = "https://qyapi.weixin.qq.com"
    callback_path: str = "/wecom/callback"
    webhook_key: SecretStr | None = None  # the group robot for announcements and summaries
    aibot: WeComAIBotSettings = WeComAIBotSettings()

    @model_validator(mode="after")
    def _agent_with_secret(self) -> WeComSettings:
        """The app sends with its secret and its AgentId together: a secret without the
        AgentId is refused here rather than leaving WeCom silently off (bot.chat.platforms)."""
        if self.secret is not None and self.agent_id is None:
            raise needed_with("agent_id", "secret")
        return self


class DingTalkSettings(Section):
    app_key: str = ""
    app_secret: SecretStr | None = None
    robot_code: str = ""
    api_base: str = "https://api.dingtalk.com"
    oapi_base: str = "https://oapi.dingtalk.com"
    callback_path: str = "/dingtalk/callback"
    card_callback_path: str = "/dingtalk/card"
    card_template_id: str = ""
    mode: typing.Literal["http", "stream"] = "http"  # how robot messages and card clicks arrive
    card_route_key: str = "shuangsui"  # the callbackRouteKey our card callback URL is registered under
    group_conversation_id: str = ""  # the group that gets announcements and summaries
    event_token: SecretStr | None = None  # event subscription (PROTOCOLS.md C.6)
    event_aes_key: SecretStr | None = None
    event_callback_path: str = "/dingtalk/events"


class ReminderSettings(Section):
    """The reminder ladder (bot.rules.deadlines.Policy) and when reminders may go out."""

    before: list[int] = [3, 1]  # working days before a due date
    lead_after: int = Field(1, ge=0)  # working days overdue before the lead office is told
    accountability_after: int = Field(3, ge=0)  # … before the unit's accountability contacts are
    working_hours: str = "09:00-18:00"  # bureau time; reminders wait for the next window
    approval_days: int = Field(5, ge=1)  # working days an approver has for a submitted result
    sweep_minutes: int = Field(10, ge=1, le=120)  # how often each instance looks

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        start, sep, end = value.partition("-")
        try:
            if not sep or time.fromisoformat(start.strip()) >= time.fromisoformat(end.strip()):
                raise ValueError
        except ValueError:
            raise ValueError(say("config", "bad_working_hours", value=value)) from None
        return value

    def window(self) -> tuple[time, time]:
        start, _, end = self.working_hours.partition("-")
        return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


_HH_MM = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d")


class SummarySettings(Section):
    """When supervisors and lead offices get the summary (bureau time)."""

    daily_at: str = "17:30"  # on working days; "" = no daily summary
    weekly_on: str = "fri"  # mon … sun; "" = no weekly summary
    weekly_at: str = "17:00"

    @field_validator("daily_at", "weekly_at")
    @classmethod
    def _clock(cls, value: str) -> str:
        """Exactly ``HH:MM`` (SPEC §4): ``17:30:00`` or ``9:30`` are refused here, not by the
        scheduler at start."""
        if value and not _HH_MM.fullmatch(value):
            raise ValueError(say("config", "bad_clock_time", value=value))
        return value

    @field_validator("weekly_on")
    @classmethod
    def _weekday(cls, value: str) -> str:
        value = value.strip().lower()
        if value and value not in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
            raise ValueError(say("config", "bad_weekday", value=value))
        return value


class PlanSettings(Section):
    """Annual plans (art. 11)."""

    #: The region's minimum ratio in percent; a plan below it is refused at import. None = no minimum.
    min_ratio: Decimal | None = Field(None, gt=0, le=100)


class RetentionSettings(Section):
    """How long what people typed is kept beside the records (``bot.retention``)."""

    days: int = Field(30, ge=1)  # sent outbox rows and console messages; evidence and audit are kept


class OutboxSettings(Section):
    """How this instance sends (``bot.chat.dispatcher``)."""

    concurrency: int = Field(16, ge=1, le=512)  # sends in flight per instance
    # DingTalk's per-app call budget (its API limits are per app and interface, set per
    # organisation: 20 calls a second is the documented default); WeCom's is published.
    dingtalk_calls_per_minute: int = Field(1200, ge=1)


class FollowupSettings(Section):
    """Art. 18: a follow-up handed to the receiving unit is closed (处置) within this many
    working days of the result's publication (``bot.batches.followups``)."""

    days: int = Field(20, ge=1)


class ConsoleSettings(Section):
    enabled: bool = False  # the local console page: acts as anyone, so loopback only


class UnitRoles(Section):
    leads: list[str] = []
    approvers: list[str] = []
    accountability: list[str] = []


class RolesSettings(Section):
    admins: list[str] = []
    supervisors: list[str] = []
    units: dict[str, UnitRoles] = {}


#: Risk tags (DRAW.md §2, art. 11) an object can carry; ``draw.frequency_exempt`` names some.
RISK_TAGS = ("complaints", "abnormal", "serious_violation", "key_sector")


class RiskWeightSettings(Section):
    """What each risk tag adds to an object's weight (1 when all are 0). The names are
    those of ``bot.rules.risk.RiskWeights``."""

    per_complaint: int = Field(0, ge=0, le=9)
    complaints_max: int = Field(0, ge=0, le=9)
    abnormal: int = Field(0, ge=0, le=9)
    serious_violation: int = Field(0, ge=0, le=9)
    key_sector: int = Field(0, ge=0, le=9)


class DrawSettings(Section):
    team_size: int = Field(2, ge=2)  # art. 14: at least two inspectors
    slack: int = Field(1, ge=0)  # DRAW.md §5: load cap = ceil(n * tasks / E) + slack
    frequency_cap: int = Field(0, ge=0)  # inspections of one object within the window; 0 = no cap
    frequency_window_days: int = Field(0, ge=0)  # 0 = the calendar year; else the last N days
    frequency_exempt: list[str] = []
    risk_weights: RiskWeightSettings = RiskWeightSettings()

    @field_validator("frequency_exempt")
    @classmethod
    def _known_tags(cls, tags: list[str]) -> list[str]:
        tags = [tag.strip().lower() for tag in tags]
        unknown = [tag for tag in tags if tag not in RISK_TAGS]
        if unknown:
            raise ValueError(say("sealing", "unknown_risk_tags", tags=unknown, known=RISK_TAGS))
        return list(dict.fromkeys(tags))


class SecuritySettings(Section):
    #: Fernet keys: the first seals, all unseal (storage.sealing.Sealer). Secrets.
    keys: list[SecretStr] = []

    @field_validator("keys")
    @classmethod
    def _fernet_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        """Each key a Fernet key (only checked: the app and the CLI build the Sealer)."""
        checked = []
        for position, key in enumerate(keys, start=1):
            value = key.get_secret_value().strip()
            try:
                Fernet(value)
            except (ValueError, TypeError):
                # Never the key itself in the message: only its position in the list.
                raise ValueError(say("sealing", "bad_fernet_key", position=position, count=len(keys))) from None
            checked.append(SecretStr(value))
        return checked


class Settings(BaseSettings):
    """The whole configuration; one section per table of SPEC §4."""

    # hide_input_in_errors: no value in an error's text, even raised outside load_settings
    # (a section's own validator is handed the whole section, secrets and all).
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False,
        hide_input_in_errors=True,
    )

    database: DatabaseSettings = DatabaseSettings()
    server: ServerSettings = ServerSettings()
    bureau: BureauSettings = BureauSettings()
    wecom: WeComSettings = WeComSettings()
    dingtalk: DingTalkSettings = DingTalkSettings()
    console: ConsoleSettings = ConsoleSettings()
    reminders: ReminderSettings = ReminderSettings()
    summaries: SummarySettings = SummarySettings()
    plans: PlanSettings = PlanSettings()
    retention: RetentionSettings = RetentionSettings()
    outbox: OutboxSettings = OutboxSettings()
    followups: FollowupSettings = FollowupSettings()
    roles: RolesSettings = RolesSettings()
    draw: DrawSettings = DrawSettings()
    security: SecuritySettings = SecuritySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # ``Settings(...)`` in code: the environment beats the values given, as it beats
        # the file. ``load_settings`` gives the whole chain (env > credentials > file).
        return (env_settings, init_settings)


class ConfigError(Exception):
    """A configuration file or value that cannot be used; the message names the key."""


def config_path(explicit: str | os.PathLike | None = None) -> Path | None:
    """The file to read: ``-c``, then ``$SHUANGSUI_CONFIG``, then ``./config.toml``."""
    if explicit:
        return Path(explicit)
    if env := os.environ.get("SHUANGSUI_CONFIG"):
        return Path(env)
    default = Path("config.toml")
    return default if default.exists() else None


def load_settings(explicit: str | os.PathLike | None = None) -> Settings:
    """Read the configuration, raising ``ConfigError`` naming the first bad key: the
    environment beats a credentials directory, which beats the file (SPEC §4)."""
    path = config_path(explicit)
    file = config_file(path) if path is not None else None
    check_environment()
    folder = credentials_dir()
    sources: list[PydanticBaseSettingsSource] = [EnvSettingsSource(Settings)]
    try:
        if folder is not None:
            sources.append(Credentials(Settings, folder))
        if file is not None:
            sources.append(file)
        settings = Settings(_build_sources=(tuple(sources), {}))
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from None
    except SettingsError as exc:  # a list or table that is not JSON
        raise ConfigError(say("config", "bad_env", names=", ".join(culprits(str(exc), folder)))) from None
    if file is not None:
        assert path is not None  # the file was read from it
        warn_if_secrets_exposed(path, file.toml_data)
    return settings


def config_file(path: Path) -> TomlConfigSettingsSource:
    """The file as pydantic-settings' TOML source, or ``ConfigError`` naming it. The
    source itself passes over a file that is missing or is a directory: a file named by
    ``-c`` or ``$SHUANGSUI_CONFIG`` is never silently replaced by defaults."""
    if not path.exists():
        raise ConfigError(say("config", "missing_file", path=str(path)))
    if not path.is_file():
        error = os.strerror(errno.EISDIR if path.is_dir() else errno.EINVAL)
        raise ConfigError(say("config", "unreadable_file", path=str(path), error=error))
    try:
        return TomlConfigSettingsSource(Settings, toml_file=path)
    except OSError as exc:  # no permission…
        raise ConfigError(say("config", "unreadable_file", path=str(path), error=exc.strerror)) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(say("config", "bad_toml", path=str(path), error=str(exc))) from exc


CREDENTIALS_ENV = ("SHUANGSUI_CREDENTIALS", "CREDENTIALS_DIRECTORY")  # ours, then systemd's LoadCredential=


def credentials_dir() -> Path | None:
    """The credentials directory named by ``$SHUANGSUI_CREDENTIALS`` or systemd's
    ``$CREDENTIALS_DIRECTORY``, if any."""
    variable = next((name for name in CREDENTIALS_ENV if os.environ.get(name)), None)
    if variable is None:
        return None
    folder = Path(os.environ[variable])
    if not folder.is_dir():
        raise ConfigError(say("config", "missing_credentials", path=str(folder), variable=variable))
    return folder


class Credentials(NestedSecretsSettingsSource):
    """A credentials directory: one file per key, named like its environment variable
    (``SHUANGSUI__WECOM__SECRET``), holding the value (lists and tables as JSON).

    pydantic-settings' nested secrets source reads it the way the environment is read
    (the prefix, ``__`` between levels, any case); this adds only what it cannot do:
    refuse a file whose name names no key, and warn about a file other users can read."""

    def __init__(self, settings_cls: type[BaseSettings], folder: Path) -> None:
        # The source takes the settings class in place of a secrets source (its code says
        # so); its annotation leaves that out.
        super().__init__(settings_cls,  # type: ignore[arg-type]
                         secrets_dir=folder, secrets_dir_missing="error", secrets_prefix=ENV_PREFIX,
                         secrets_nested_delimiter="__")

    @classmethod
    def load_secrets(cls, path: Path) -> dict[str, str]:
        found = super().load_secrets(path)
        for name in sorted(found):
            if name.upper().startswith(ENV_PREFIX):
                check_name(name)
                mode = (path / name).stat().st_mode
                if mode & (stat.S_IRGRP | stat.S_IROTH):
                    log.warning(say("config", "secrets_readable", path=str(path / name), mode=oct(mode & 0o777)))
        return found


def culprits(error: str, folder: Path | None) -> list[str]:
    """The variables (or credential files) a pydantic-settings error is about: those that
    set the field it names, in the source it names."""
    field = re.search(r'field "([^"]+)"', error)
    stem = ENV_PREFIX + (field.group(1).upper() if field else "")
    given = os.environ if folder is None or f'"{Credentials.__name__}"' not in error else os.listdir(folder)
    return sorted({name.upper() for name in given if name.upper().startswith(stem)}) or [stem]


def check_environment() -> None:
    """A ``SHUANGSUI__…`` variable that names no key is a typo: refuse it, as in the file."""
    for name in sorted(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            check_name(name)


def check_name(name: str) -> None:
    """Refuse a ``SHUANGSUI__…`` name (a variable or a credential file) that names no key."""
    parts = name[len(ENV_PREFIX):].lower().split("__")
    model: type[BaseModel] = Settings
    any_key = False  # the next part is a key of a table such as roles.units
    for part in parts:
        if any_key:
            any_key = False
            continue
        field = model.model_fields.get(part)
        if field is None:
            raise ConfigError(say("config", "unknown_env", name=name.upper(), key=".".join(parts)))
        annotation = field.annotation
        if typing.get_origin(annotation) is dict:
            annotation, any_key = typing.get_args(annotation)[1], True
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation


def describe_errors(exc: ValidationError) -> str:
    """One line per bad key, as ``section.key`` with the env variable that sets it."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        loc, given = tuple(str(part) for part in error["loc"]), ""
        if error["type"] == NEEDED_WITH:  # raised by the section: name the key it needs
            loc, given = (*loc, error["ctx"]["key"]), ".".join((*loc, error["ctx"]["given"]))
        key = ".".join(loc)
        env = ENV_PREFIX + "__".join(loc).upper()
        lines.append(say("config", "bad_key", key=key, env=env, kind=error["type"], error=error["msg"], given=given))
    return "\n".join(lines)


def holds_secrets(values: dict[str, Any], model: type[BaseModel] = Settings) -> bool:
    """Whether the file's own ``values`` set a secret: a non-empty ``SecretStr`` key (or
    a list of them holding a non-empty one) anywhere in the model, or a password in the
    database URL."""
    for name, field in model.model_fields.items():
        value = values.get(name)
        if value is None or value == "":
            continue
        annotation = field.annotation
        if annotation in (SecretStr, SecretStr | None):
            return True
        if annotation == list[SecretStr] and isinstance(value, list) and any(item != "" for item in value):
            return True
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(value, dict):
            if holds_secrets(value, annotation):
                return True
    database = values.get("database")
    return isinstance(database, dict) and isinstance(database.get("url"), str) and bool(url_password(database["url"]))


def warn_if_secrets_exposed(path: Path, values: dict[str, Any]) -> None:
    """Warn when a file holding secrets can be read by other users (SPEC §4)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if holds_secrets(values) and mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(say("config", "secrets_readable", path=str(path), mode=oct(mode & 0o777)))
