"""The fuzz tests' fixtures: an app configured for WeCom or DingTalk (workers off) on
either backend (``*_gate``), or on SQLite only for requests refused before any query
(``*_edge``), and the district the chat and public tests share.
"""

from __future__ import annotations

import shutil

import pytest

from storage.db import make_engine
from tests.fuzz.harness import make_gate
from tests.support.wecom_bot import fake_wecom, wecom_settings


@pytest.fixture
async def wecom_gate(aiohttp_client, engine):
    return await make_gate("wecom", aiohttp_client, engine)


@pytest.fixture
async def dingtalk_gate(aiohttp_client, engine):
    return await make_gate("dingtalk", aiohttp_client, engine)


@pytest.fixture
async def gate(request, aiohttp_client, engine):
    """One platform's app, by indirect parametrization: ``("gate", …), [("wecom", …)], indirect=["gate"]``."""
    return await make_gate(request.param, aiohttp_client, engine)


@pytest.fixture
def edge_engine(tmp_path, sqlite_template):
    """A migrated SQLite database only, for requests refused before any query (the backend
    cannot matter to them, so they need not run again on PostgreSQL)."""
    path = tmp_path / "edge.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


@pytest.fixture
async def wecom_edge(aiohttp_client, edge_engine):
    return await make_gate("wecom", aiohttp_client, edge_engine)


@pytest.fixture
async def dingtalk_edge(aiohttp_client, edge_engine):
    return await make_gate("dingtalk", aiohttp_client, edge_engine)


@pytest.fixture
async def edge(request, aiohttp_client, edge_engine):
    """``gate`` on SQLite only (see ``edge_engine``)."""
    return await make_gate(request.param, aiohttp_client, edge_engine)


@pytest.fixture
def district_settings():
    return wecom_settings(fake_wecom())

