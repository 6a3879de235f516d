"""The fuzz tests' harness: hypothesis settings, the app under test and the judge of
one request, the requests each platform sends (sealed, signed, enveloped) and the
strategies more than one ingress draws from. Hostile values, the raw HTTP client and
the database fingerprint are in ``tests.fuzz.bodies``; the fixtures in ``conftest.py``.

The properties every ingress is held to: never a 5xx (nor an exception, nor a hang);
whatever is refused leaves the database as it was; only a genuine delivery is taken,
and its handler does not fail. Each test builds its app once and reuses it for every
example. Requests that are refused before any query run on SQLite only
(``edge_engine``); whatever reaches the database runs on both backends.

Every input that broke a property when these tests were written has a ``test_bug_*``
test of its own, kept as a regression test once the bug was fixed. aiohttp's (an Expect
header that is not UTF-8, a 500) is answered 417 by ``bot.app.expect_handler``
(test_expect_header_not_utf8_is_a_417); ``known_expect_bug`` leaves such a header out of
the properties, since a 417 refuses even a genuine delivery.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import note as hypothesis_note
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from sqlalchemy import text

from bot.app import PIPELINE, card_keys, create_app
from bot.batches import create, draw, publish
from bot.callback_crypto import MsgCrypt
from bot.clock import bureau_today
from bot.clock import now as clock_now
from bot.dingtalk.sign import WINDOW_MS, robot_sign
from bot.rules.arguments import parse_arguments
from bot.wecom.callback import REPLAY_WINDOW
from storage.db import transaction
from tests.fuzz.bodies import (
    broken_json,
    dumps,
    grown,
    hostile_text,
    hostile_xml,
    json_values,
    query_bytes,
    raw_request,
    row_counts,
    timestamps,
    without_nul,
)
from tests.support.batch_district import OBJECTS, seed_district
from tests.support.dingtalk_bot import EVENT_KEY, EVENT_TOKEN, SECRET, edge_settings
from tests.support.fakes.wecom import AIBOT_AES_KEY, APP_AES_KEY
from tests.support.wecom_bot import fake_wecom, link_inspectors, wecom_settings

SUPPRESSED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
              HealthCheck.filter_too_much]


# `make test` replays the same examples every run (a red build is reproducible, never a
# lottery); SHUANGSUI_FUZZ_EXPLORE=1 searches afresh, and as long as one asks.
EXPLORE = os.environ.get("SHUANGSUI_FUZZ_EXPLORE") == "1"


def fuzz(examples: int):
    return settings(max_examples=examples * (20 if EXPLORE else 1), deadline=None, database=None,
                    suppress_health_check=SUPPRESSED, derandomize=not EXPLORE)


APP_CRYPT = MsgCrypt("faketoken123", APP_AES_KEY, "wwfakecorp")
AIBOT_CRYPT = MsgCrypt("fakeaibot456", AIBOT_AES_KEY, "")
EVENT_CRYPT = MsgCrypt(EVENT_TOKEN, EVENT_KEY, "dingfakeappkey")
MARGIN = 10  # seconds kept away from the edge of a replay window (the clock moves during a test)


def note(message: str) -> None:
    """A note on the failing example (outside hypothesis: nothing)."""
    try:
        hypothesis_note(message)
    except InvalidArgument:
        pass


def label(text_: str) -> None:
    """Count this kind of example in ``--hypothesis-show-statistics`` (outside hypothesis: nothing)."""
    try:
        event(text_)
    except InvalidArgument:
        pass


def is_pg(engine) -> bool:
    return engine.dialect.name == "postgresql"


def fuzz_text(pg: bool):
    """Hostile text, without NUL on PostgreSQL (each way NUL gets there is a test_bug_nul_* of its own)."""
    return hostile_text.map(without_nul) if pg else hostile_text


def pg_only(engine) -> None:
    if not is_pg(engine):
        pytest.skip("the bug is PostgreSQL's only (SQLite stores NUL and 64-bit integers)")


# ----- the known bugs, left out of the property tests (each pinned by a test_bug_*) -----------------------------------


def known_expect_bug(headers) -> bool:
    """An Expect header that is not UTF-8: a 417 whatever the request (bot.app.expect_handler;
    test_expect_header_not_utf8_is_a_417)."""
    for name, value in headers:
        if name.lower() == b"expect":
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                return True
    return False


# ----- an ingress under test ------------------------------------------------------------------------------------------


class Gate:
    """The app under test (workers off), its client, and the judge of one request."""

    def __init__(self, client, engine) -> None:
        self.client, self.engine = client, engine
        self.pg = is_pg(engine)

    async def settle(self) -> dict[str, int]:
        """Wait for the work an accepted delivery started; the row counts then."""
        await self.client.app[PIPELINE].drain()
        return row_counts(self.engine)

    async def judge(self, send, *, genuine: bool, expect: set[int] | None = None) -> int:
        """Send one request: never a 5xx; refused → nothing written; 200 → genuine, taken at most once
        and handled without an error."""
        before = await self.settle()
        status = await send()
        after = await self.settle()
        note(f"status {status}, genuine {genuine}, grown {grown(before, after)}")
        label(f"status {status}")
        assert status < 500, f"server error {status}"
        if expect is not None:
            assert status in expect, (status, expect)
        if status == 200:
            assert genuine, "a request that is not genuine was accepted"
            assert after["inbound_deliveries"] - before["inbound_deliveries"] <= 1
            with self.engine.connect() as connection:
                failed = connection.execute(text("SELECT delivery_key, error FROM inbound_deliveries "
                                                 "WHERE error IS NOT NULL")).all()
            assert not failed, f"an accepted delivery failed in its handler: {failed}"
        else:
            assert 400 <= status < 500, status
            assert after == before, f"a refused request changed the database: {grown(before, after)}"
        return status

    async def raw(self, method: bytes, target: bytes, headers=(), body: bytes = b"", **kwargs) -> int:
        return (await raw_request(self.client, method, target, list(headers), body, **kwargs)).status


async def make_gate(platform: str, aiohttp_client, engine) -> Gate:
    """The app with WeCom's or DingTalk's callbacks configured (workers off), and its client."""
    config = wecom_settings(fake_wecom()) if platform == "wecom" else edge_settings()
    gate = Gate(await aiohttp_client(create_app(config, engine, workers=False)), engine)
    gate.card_key = card_keys(config)[0]
    return gate


def by_platform(*endpoints: str) -> list:
    """Parameters (platform, endpoint) for ``gate`` (indirect) and ``endpoint``."""
    return [pytest.param(e.split("_")[0], e, id=e) for e in endpoints]


# ----- what the platforms send ----------------------------------------------------------------------------------------


def target(path: str, pairs) -> bytes:
    """A request target with exactly these query pairs (each percent-encoded, so '+' stays '+')."""
    query = urlencode(list(pairs), safe="", quote_via=quote, encoding="utf-8", errors="surrogatepass")
    return (path + ("?" + query if query else "")).encode()


def sealed(crypt: MsgCrypt, plaintext: bytes, *, timestamp: str | None = None,
           nonce: str = "fuzz1") -> tuple[str, list]:
    """Encrypt and sign as the platform does: the ciphertext and the signed query pairs."""
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    encrypt = crypt.encrypt(plaintext)
    return encrypt, [("msg_signature", crypt.signature(timestamp, nonce, encrypt)), ("timestamp", timestamp),
                     ("nonce", nonce)]


def app_envelope(encrypt: str) -> bytes:
    return (f"<xml><ToUserName><![CDATA[wwfakecorp]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
            f"<AgentID><![CDATA[1000002]]></AgentID></xml>").encode()


def aibot_envelope(encrypt: str) -> bytes:
    return json.dumps({"encrypt": encrypt}).encode()


def fresh_within(timestamp: str, unit: int, window_ms: int = WINDOW_MS) -> bool:
    """Plain digits, well inside the replay window (seconds or, ``unit`` 1000, milliseconds:
    ``window_ms``, DingTalk's for events by default; ROBOT_WINDOW_MS for robot messages)."""
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 20:
        return False
    window = REPLAY_WINDOW * unit if unit == 1 else window_ms  # WeCom's (seconds), DingTalk's (milliseconds)
    return abs(int(time.time() * unit) - int(timestamp)) <= window - MARGIN * unit


QUERY_KEYS = ["msg_signature", "timestamp", "nonce", "echostr", "signature", "timeStamp", "msgsignature"]


@st.composite
def query_pairs(draw, unit: int = 1) -> list[tuple[str, str]]:
    """Query pairs with the signed names (missing, repeated, empty) and hostile values."""
    value = (timestamps(unit=unit) | hostile_text | st.sampled_from(["", "0" * 40, "a" * 40, "fuzz"])
             | st.binary(max_size=30).map(lambda b: b.decode("latin-1")))
    return draw(st.lists(st.tuples(st.sampled_from(QUERY_KEYS) | hostile_text, value), max_size=7))


extra_headers = st.lists(st.tuples(
    st.sampled_from([b"Content-Type", b"Content-Encoding", b"Accept-Encoding", b"Cookie", b"X-Forwarded-For",
                     b"Expect", b"X-Fuzz"]),
    query_bytes | st.sampled_from([b"identity", b"x-unknown", b"compress", b"text/xml; charset=gbk",
                                   b"application/json; charset=utf-16", b"multipart/form-data; boundary=x",
                                   b"100-continue"])), max_size=3)


random_bodies = (st.binary(max_size=400) | broken_json | json_values().map(dumps)
                 | st.sampled_from(hostile_xml("<Encrypt>&e;</Encrypt>"))
                 | st.sampled_from([b"<xml><Encrypt></Encrypt></xml>", b"<xml><Encrypt>  </Encrypt></xml>",
                                    b"<xml><Encrypt>" + b"A" * 43 + b"=</Encrypt></xml>", b"<xml/>",
                                    b'{"encrypt": ""}', b'{"encrypt": 1}', b'{"encrypt": "' + b"A" * 44 + b'"}']))


def genuine_aibot_message(n: int) -> dict:
    return {"msgid": f"fuzz{n}", "aibotid": "aibfakebot", "chatid": "CHAT1", "chattype": "group",
            "from": {"userid": "stranger"}, "msgtype": "text", "text": {"content": "@双随 帮助"}}


async def post_sealed(gate: Gate, path: str, crypt: MsgCrypt, plaintext: bytes, envelope) -> int:
    encrypt, pairs = sealed(crypt, plaintext)
    return await gate.raw(b"POST", target(path, pairs), (), envelope(encrypt))


_last_robot_ms = 0


def robot_headers(timestamp: str | None = None, secret: str = SECRET) -> list[tuple[bytes, bytes]]:
    """Signed headers; by default a timestamp of its own (a pair carries one message)."""
    global _last_robot_ms
    if timestamp is None:
        _last_robot_ms = max(int(time.time() * 1000), _last_robot_ms + 1)
        timestamp = str(_last_robot_ms)
    return [(b"timestamp", timestamp.encode()), (b"sign", robot_sign(timestamp, secret).encode()),
            (b"Content-Type", b"application/json")]


def genuine_robot_message(n: int) -> dict:
    return {"conversationId": "cidP", "conversationType": "1", "msgId": f"fuzz{n}", "createAt": int(time.time() * 1000),
            "senderStaffId": "staff01", "senderId": "$:LWCP_v1:$x", "msgtype": "text", "text": {"content": "帮助"}}


# ----- the district ---------------------------------------------------------------------------------------------------


def drawn_district(engine, tmp_path, settings_) -> str:
    """The batch district, its inspectors on WeCom, and one batch published and drawn."""
    seed_district(engine, tmp_path)
    link_inspectors(engine)
    now, today = clock_now(), bureau_today(settings_.bureau.timezone)
    due = (today + timedelta(days=60)).isoformat()
    with transaction(engine) as session:
        arguments = parse_arguments(f"名称=模糊测试 事项=A01 截止={due} 数量=2 方式=大随机", create.NEW_KEYS)
        batch_id = create.new_batch(session, settings_, "admin", arguments, today).batch.id
    with transaction(engine) as session:
        publish.publish(session, settings_, "admin", parse_arguments(f"批次={batch_id}", publish.PUBLISH_KEYS), now)
    with transaction(engine) as session:
        draw.draw(session, settings_, "admin", parse_arguments(f"批次={batch_id}", draw.DRAW_KEYS), now)
    return batch_id


OBJECT_IDS = [line.split(",")[0] for line in OBJECTS.splitlines()[1:4]]

