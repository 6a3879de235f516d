"""What the chat tests share: the WeCom bot started with other ``[roles]``."""

from __future__ import annotations

import pytest

from bot.app import create_app
from bot.settings import RolesSettings
from tests.support.batch_district import seed_district
from tests.support.wecom_bot import link_inspectors, wecom_settings


@pytest.fixture
def start_bot(engine, tmp_path, wecom, aiohttp_server):
    """The ``bot`` fixture with other ``[roles]`` (a Settings variant)."""
    async def start(roles: dict):
        seed_district(engine, tmp_path)
        link_inspectors(engine)
        settings = wecom_settings(wecom).model_copy(update={"roles": RolesSettings(**roles)})
        app = create_app(settings, engine, ticker=False)
        server = await aiohttp_server(app)
        wecom.bot_url = str(server.make_url("")).rstrip("/")
        return app
    return start
