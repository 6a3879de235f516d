"""Configuration: a TOML file, overridden key by key by ``SHUANGSUI__SECTION__KEY``.

SPEC §4 is the contract. The file is found as ``-c FILE``, then ``$SHUANGSUI_CONFIG``,
then ``./config.toml``, then built-in defaults. Secrets are ``SecretStr`` so that they
never reach a log line or a ``repr``.
"""

from __future__ import annotations

import logging
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.texts import say

log = logging.getLogger(__name__)

ENV_PREFIX = "SHUANGSUI__"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(Section):
    url: str = "sqlite:///shuangsui.db"
    echo: bool = False


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_base_url: str = "http://127.0.0.1:8080"


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
    aibot: WeComAIBotSettings = WeComAIBotSettings()


class DingTalkSettings(Section):
    app_key: str = ""
    app_secret: SecretStr | None = None
    robot_code: str = ""
    api_base: str = "https://api.dingtalk.com"
    oapi_base: str = "https://oapi.dingtalk.com"
    callback_path: str = "/dingtalk/callback"
    card_callback_path: str = "/dingtalk/card"
    card_template_id: str = ""


class UnitRoles(Section):
    leads: list[str] = []
    approvers: list[str] = []
    accountability: list[str] = []


class RolesSettings(Section):
    admins: list[str] = []
    supervisors: list[str] = []
    units: dict[str, UnitRoles] = {}


class Settings(BaseSettings):
    """The whole configuration; one section per table of SPEC §4."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    database: DatabaseSettings = DatabaseSettings()
    server: ServerSettings = ServerSettings()
    bureau: BureauSettings = BureauSettings()
    wecom: WeComSettings = WeComSettings()
    dingtalk: DingTalkSettings = DingTalkSettings()
    roles: RolesSettings = RolesSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's contents arrive as init values; the environment beats them (SPEC §4).
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
    """Read the configuration, raising ``ConfigError`` naming the first bad key."""
    path = config_path(explicit)
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(say("config", "missing_file", path=str(path))) from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(say("config", "bad_toml", path=str(path), error=str(exc))) from exc
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from None
    if path is not None:
        warn_if_secrets_exposed(path, settings)
    return settings


def describe_errors(exc: ValidationError) -> str:
    """One line per bad key, as ``section.key`` with the env variable that sets it."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        key = ".".join(str(part) for part in error["loc"])
        env = ENV_PREFIX + "__".join(str(part) for part in error["loc"]).upper()
        lines.append(say("config", "bad_key", key=key, env=env, kind=error["type"], error=error["msg"]))
    return "\n".join(lines)


def holds_secrets(settings: Settings) -> bool:
    """Whether any secret is configured (so that its file must be private)."""
    return any(
        value is not None
        for value in (
            settings.wecom.secret,
            settings.wecom.token,
            settings.wecom.encoding_aes_key,
            settings.wecom.aibot.token,
            settings.wecom.aibot.encoding_aes_key,
            settings.dingtalk.app_secret,
        )
    )


def warn_if_secrets_exposed(path: Path, settings: Settings) -> None:
    """Warn when a file holding secrets can be read by other users (SPEC §4)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if holds_secrets(settings) and mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(say("config", "secrets_readable", path=str(path), mode=oct(mode & 0o777)))
