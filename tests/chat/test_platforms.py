"""Which platforms send and which entries receive is decided in bot/chat/platforms.py
alone: the app's senders and callback routes follow it, and a WeCom secret without its
AgentId is refused at start instead of leaving WeCom silently off."""

from __future__ import annotations

import pytest

from bot import cli
from bot.app import DISPATCHER, create_app
from bot.chat import platforms
from bot.settings import ConfigError, Settings, load_settings
from storage.db import make_engine

WECOM_APP = {"corp_id": "ww1", "agent_id": 1000002, "secret": "s", "token": "t",
             "encoding_aes_key": "k" * 43}
AIBOT = {"token": "t", "encoding_aes_key": "k" * 43}
DINGTALK = {"app_key": "ding1", "app_secret": "s"}
EVENTS = {"app_key": "ding1", "event_token": "t", "event_aes_key": "k" * 43}

pytestmark = pytest.mark.usefixtures("clean_environment")  # no stray configuration (conftest.py)


@pytest.mark.parametrize(("sections", "enabled", "entries"), [
    ({}, [], set()),
    ({"wecom": WECOM_APP}, ["wecom"], {platforms.WECOM_APP}),
    ({"wecom": {**WECOM_APP, "corp_id": ""}}, [], set()),  # no corp id: neither sends nor receives
    ({"wecom": {"aibot": AIBOT}}, [], {platforms.WECOM_AIBOT}),  # the AI bot answers in the callback only
    ({"dingtalk": DINGTALK}, ["dingtalk"], {platforms.DINGTALK_HTTP}),
    ({"dingtalk": {**DINGTALK, "mode": "stream"}}, ["dingtalk"], {platforms.DINGTALK_STREAM}),
    ({"dingtalk": EVENTS}, [], {platforms.DINGTALK_EVENTS}),
    ({"console": {"enabled": True}}, ["console"], {platforms.CONSOLE_PAGE}),
    ({"wecom": WECOM_APP, "dingtalk": DINGTALK, "console": {"enabled": True}}, ["wecom", "dingtalk", "console"],
     {platforms.WECOM_APP, platforms.DINGTALK_HTTP, platforms.CONSOLE_PAGE}),
])
def test_what_sends_and_what_receives(sections, enabled, entries):
    settings = Settings(**sections)
    assert platforms.enabled(settings) == enabled
    assert platforms.entries(settings) == entries


@pytest.mark.parametrize(("sections", "paths"), [
    ({}, set()),
    ({"wecom": {**WECOM_APP, "aibot": AIBOT}}, {"/wecom/callback", "/wecom/aibot"}),
    ({"dingtalk": DINGTALK}, {"/dingtalk/callback", "/dingtalk/card"}),
    ({"dingtalk": {**DINGTALK, **EVENTS, "mode": "stream"}}, {"/dingtalk/events"}),
    ({"console": {"enabled": True}}, {"/console", "/console/"}),
])
def test_the_app_opens_the_callbacks_of_the_entries(tmp_path, sections, paths):
    app = create_app(Settings(**sections), make_engine(f"sqlite:///{tmp_path / 'x.db'}"), workers=False)
    opened = {resource.canonical for resource in app.router.resources()}
    every = {"/wecom/callback", "/wecom/aibot", "/dingtalk/callback", "/dingtalk/card", "/dingtalk/events",
             "/console", "/console/"}
    assert opened & every == paths


async def test_the_app_sends_on_the_enabled_platforms(aiohttp_client, engine):
    settings = Settings(wecom=WECOM_APP, console={"enabled": True})
    client = await aiohttp_client(create_app(settings, engine, ticker=False))
    assert list(client.app[DISPATCHER].senders) == platforms.enabled(settings) == ["wecom", "console"]


SECRET = "S3cr3t-Do-Not-Leak-9c1d"


def test_a_wecom_secret_without_its_agent_id_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "c.toml"
    path.write_text(f'[wecom]\ncorp_id = "ww1"\nsecret = "{SECRET}"\n', encoding="utf-8")
    path.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "wecom.agent_id" in message and "SHUANGSUI__WECOM__AGENT_ID" in message and "wecom.secret" in message
    assert SECRET not in message and SECRET not in repr(caught.value)

    monkeypatch.setenv("SHUANGSUI__WECOM__AGENT_ID", "1000002")  # from anywhere: here the environment
    assert load_settings(path).wecom.agent_id == 1000002
    monkeypatch.delenv("SHUANGSUI__WECOM__AGENT_ID")
    monkeypatch.setenv("SHUANGSUI__WECOM__SECRET", "")  # the environment unsets the secret: nothing to refuse
    assert load_settings(path).wecom.secret is None


def test_the_command_stops_on_a_secret_without_agent_id(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SHUANGSUI__WECOM__SECRET", SECRET)
    assert cli.main(["db", "upgrade"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "wecom.agent_id" in err and "SHUANGSUI__WECOM__AGENT_ID" in err
    assert SECRET not in err
    assert not (tmp_path / "shuangsui.db").exists()


def test_a_secret_refused_outside_load_settings_is_not_shown():
    with pytest.raises(ValueError) as caught:
        Settings(wecom={"corp_id": "ww1", "secret": SECRET})
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
