"""What every layer of the tests stands on.

Test databases: every storage test runs on SQLite, and on PostgreSQL when
``SHUANGSUI_TEST_PG_URL`` names a server (CI always sets it). Each PostgreSQL run
creates its own database and drops it at the end.

The chat platforms: the fake WeCom and the fake DingTalk, the real bot wired to each (DingTalk
over HTTP or Stream), the bot's own local console, and the district's people talking to it
(``*_walk``; the helpers behind them are in tests/support/)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel

from bot.app import create_app
from storage import schema
from storage.db import make_engine
from storage.sealing import Sealer, new_key
from tests.support.batch_district import seed_district
from tests.support.console_bot import ConsoleWalk, open_console, start_console
from tests.support.dingtalk_bot import DingTalkWalk, start_bot
from tests.support.fakes.dingtalk import FakeDingTalk
from tests.support.fakes.wecom import FakeWeCom
from tests.support.wecom_bot import USERS, Walk, fake_wecom, link_inspectors, wecom_settings

PG_ENV = "SHUANGSUI_TEST_PG_URL"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)]


def pytest_collection_modifyitems(config, items):
    if os.environ.get(PG_ENV):
        return
    skip = pytest.mark.skip(reason=f"PostgreSQL tests are off: set {PG_ENV} (CI does)")
    for item in items:
        if "pg" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    url = os.environ.get(PG_ENV)
    if not url:
        return f"PostgreSQL tests: off (set {PG_ENV})"
    return f"PostgreSQL tests: on, {make_url(url).render_as_string(hide_password=True)}"


@pytest.fixture
def clean_environment(monkeypatch, tmp_path):
    """No stray configuration: no SHUANGSUI__* variable, no SHUANGSUI_CONFIG or credentials
    directory, and a cwd without config.toml."""
    from bot.settings import CREDENTIALS_ENV, ENV_PREFIX

    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX) or name.upper() in ("SHUANGSUI_CONFIG", *CREDENTIALS_ENV):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """One migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    schema.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_database():
    """A fresh PostgreSQL database for the whole run, migrated once, dropped at the end."""
    admin_url = make_url(os.environ[PG_ENV])
    name = f"shuangsui_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(admin_url.render_as_string(hide_password=False))
    admin = admin.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    schema.upgrade(engine)
    yield url, engine
    engine.dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    """A migrated, empty database's URL, on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url, engine = request.getfixturevalue("pg_database")
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as connection:
        # A test that leaves a transaction open would block this for ever: fail fast instead.
        connection.execute(text("SET LOCAL lock_timeout = '30s'"))
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return url


@pytest.fixture
def sealing_key() -> str:
    """The one key of ``[security] keys`` a test's database is sealed with."""
    return new_key()


@pytest.fixture
def engine(db_url, sealing_key):
    engine = make_engine(db_url, sealer=Sealer([sealing_key]))
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine):
    with Session(engine, expire_on_commit=False) as session:
        yield session


# ----- the chat platforms: the fakes, the bot on each, the district's people ------------------------------------------


@pytest.fixture
async def wecom(aiohttp_server):
    fake = fake_wecom()
    server = await aiohttp_server(fake.app())
    fake.base_url = str(server.make_url("")).rstrip("/")
    yield fake
    await fake.close()


@pytest.fixture
async def bot(engine, tmp_path, wecom: FakeWeCom, aiohttp_server):
    seed_district(engine, tmp_path)
    link_inspectors(engine)
    settings = wecom_settings(wecom)
    app = create_app(settings, engine, ticker=False)
    server = await aiohttp_server(app)
    wecom.bot_url = str(server.make_url("")).rstrip("/")
    return app


@pytest.fixture
def wecom_walk(bot, wecom, engine):
    return Walk(wecom, engine, bot)


@pytest.fixture
async def dingtalk(aiohttp_server):
    fake = FakeDingTalk(users=USERS)
    server = await aiohttp_server(fake.app())
    fake.base_url = str(server.make_url("")).rstrip("/")
    yield fake
    await fake.close()


@pytest.fixture
async def dingtalk_bot(engine, tmp_path, dingtalk, aiohttp_server, unused_tcp_port):
    return await start_bot(engine, tmp_path, dingtalk, aiohttp_server, unused_tcp_port, "http")


@pytest.fixture
async def dingtalk_stream_bot(engine, tmp_path, dingtalk, aiohttp_server, unused_tcp_port):
    return await start_bot(engine, tmp_path, dingtalk, aiohttp_server, unused_tcp_port, "stream")


@pytest.fixture
def dingtalk_walk(dingtalk_bot, dingtalk, engine):
    return DingTalkWalk(dingtalk, engine, dingtalk_bot)


@pytest.fixture
def dingtalk_stream_walk(dingtalk_stream_bot, dingtalk, engine):
    return DingTalkWalk(dingtalk, engine, dingtalk_stream_bot)


@pytest.fixture
async def console_walk(engine, tmp_path, aiohttp_client):
    app, client = await start_console(engine, tmp_path, aiohttp_client)
    return ConsoleWalk(client, engine, app)


@pytest.fixture
async def console(engine, tmp_path, aiohttp_client):
    """A client of the bot's local console, person by person (``console_say``)."""
    return await open_console(engine, tmp_path, aiohttp_client)


@pytest.fixture(params=["wecom", "dingtalk", "dingtalk_stream", "console"])
def walk(request):
    """The district's people on one platform: WeCom, DingTalk over HTTP, DingTalk over Stream, the console."""
    return request.getfixturevalue(f"{request.param}_walk")
