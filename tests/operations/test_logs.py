"""Logs are JSON lines with a request or delivery id, and a whole workflow on each
platform leaves no secret, token, decrypted body or typed text in them (issue 9)."""

from __future__ import annotations

import json
import logging

from bot.logs import JsonFormatter, new_id, request_id
from tests.support.workflow import whole_workflow

TYPED = ["名称=食品经营抽查", "标签不规范", "请补充整改期限", "已责令十日内改正", "负责人不在场", "区公安分局",
         "涉嫌伪造证照", "photo of the shop front"]
PLAINTEXT = ["<xml>", "FromUserName", "<Content>", '"msgtype"', "senderStaffId", "cardPrivateData"]


def secrets_of(walk) -> list[str]:
    app = walk.app
    from bot.app import SETTINGS

    settings = app[SETTINGS]
    found = [k.get_secret_value() for k in settings.security.keys]
    for value in (settings.wecom.secret, settings.wecom.token, settings.wecom.encoding_aes_key,
                  settings.wecom.webhook_key, settings.wecom.aibot.token, settings.wecom.aibot.encoding_aes_key,
                  settings.dingtalk.app_secret):
        if value is not None:
            found.append(value.get_secret_value())
    if walk.platform == "console":
        found.append(walk.token)  # this start's console token
    else:
        found += list(walk.fake._tokens)  # every access token the platform issued
    return [s for s in found if s]


async def test_a_whole_workflow_logs_nothing_secret(walk, engine, caplog):
    caplog.set_level(logging.DEBUG)
    await whole_workflow(walk, engine)
    formatter = JsonFormatter()
    ours = [r for r in caplog.records if r.name != "aiohttp.access"]  # serve runs without an access log
    assert sum(r.name.startswith("bot.") for r in ours) > 50, "the scenario's work is not logged"
    lines = [formatter.format(r) for r in ours]
    forbidden = secrets_of(walk) + TYPED + PLAINTEXT
    assert len(secrets_of(walk)) >= 2
    for line in lines:
        assert json.loads(line)["message"] is not None
        for word in forbidden:
            assert word not in line, f"{word!r} in a log line: {line[:200]}"


def test_json_lines_carry_the_request_id(caplog):
    caplog.set_level(logging.INFO)
    token = request_id.set(new_id())
    try:
        logging.getLogger("bot.test").info("taken %s", 3)
    finally:
        request_id.reset(token)
    line = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert line["message"] == "taken 3" and line["request_id"].startswith("r-") and line["level"] == "INFO"
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("bot.test").exception("failed")
    assert "ValueError" in json.loads(JsonFormatter().format(caplog.records[-1]))["error"]


async def test_responses_carry_the_request_id(aiohttp_client, engine):
    from bot.app import create_app
    from bot.settings import Settings

    client = await aiohttp_client(create_app(Settings(), engine, workers=False))
    response = await client.get("/healthz")
    assert response.headers["X-Request-Id"].startswith("r-")
    response = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    response = await client.get("/healthz", headers={"X-Request-Id": "not an id; " * 10})
    assert response.headers["X-Request-Id"].startswith("r-")
    assert (await client.get("/nope")).headers["X-Request-Id"].startswith("r-")
