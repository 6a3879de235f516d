"""What every platform callback shares, fuzzed: bodies over the 64 KiB limit (with a
Content-Length, chunked, or only declared), bodies at the limit, compression bombs and
bodies that are not what their encoding says, JSON nested past the parser, NUL in a
delivery key; and the harness's own helpers.
"""

from __future__ import annotations

import gzip
import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.app import MAX_REQUEST
from bot.chat.ingress import MAX_BODY
from tests.fuzz.bodies import dumps, raw_request, unicode_digits
from tests.fuzz.harness import (
    AIBOT_CRYPT,
    EVENT_CRYPT,
    aibot_envelope,
    by_platform,
    fuzz,
    genuine_aibot_message,
    genuine_robot_message,
    known_expect_bug,
    pg_only,
    post_sealed,
    robot_headers,
    target,
)


def fresh_query(unit: int = 1) -> list[tuple[str, str]]:
    return [("msg_signature", "0" * 40), ("timestamp", str(int(time.time() * unit))), ("nonce", "n")]


def endpoints() -> dict[str, tuple[bytes, list]]:
    """Each POST endpoint, with what lets a request reach its body (never a valid signature)."""
    return {"wecom_app": (target("/wecom/callback", fresh_query()), []),
            "wecom_aibot": (target("/wecom/aibot", fresh_query()), []),
            "dingtalk_robot": (b"/dingtalk/callback", robot_headers()),
            "dingtalk_card": (b"/dingtalk/card", []),
            "dingtalk_events": (target("/dingtalk/events", fresh_query(1000)), [])}


@fuzz(30)
@given(endpoint=st.sampled_from(["wecom_app", "wecom_aibot", "dingtalk_robot", "dingtalk_card", "dingtalk_events"]),
       extra=st.integers(1, 4096) | st.sampled_from([1, MAX_REQUEST - MAX_BODY, MAX_REQUEST - MAX_BODY + 1]),
       mode=st.sampled_from(["length", "chunked", "small_chunks", "declared_only"]), filler=st.binary(min_size=1,
                                                                                                   max_size=64))
async def test_oversized_bodies_are_refused(dingtalk_edge, wecom_edge, endpoint, extra, mode, filler):
    """Bodies just over 64 KiB (and past the app's client_max_size), with a Content-Length,
    chunked without one, or only declared: 413, nothing stored."""
    gate = dingtalk_edge if endpoint.startswith("dingtalk") else wecom_edge
    path, headers = endpoints()[endpoint]
    size = MAX_BODY + extra
    body = (filler * (size // len(filler) + 1))[:size]
    if mode == "length":
        send = gate.raw(b"POST", path, headers, body)
    elif mode == "chunked":
        send = gate.raw(b"POST", path, headers, chunks=[body[:size // 2], body[size // 2:]])
    elif mode == "small_chunks":
        send = gate.raw(b"POST", path, headers, chunks=[body[i:i + 8192] for i in range(0, size, 8192)])
    else:  # a Content-Length past the limit, and no body at all: refused without waiting for it
        send = gate.raw(b"POST", path, [*headers, (b"Content-Length", str(size).encode())], content_length=False)
    await gate.judge(lambda: send, genuine=False, expect={413})


@pytest.mark.parametrize(("edge", "endpoint"), by_platform("wecom_app", "wecom_aibot", "dingtalk_robot",
                                                           "dingtalk_card", "dingtalk_events"), indirect=["edge"])
async def test_bodies_at_the_limit_and_compression_bombs(edge, endpoint):
    """Exactly 64 KiB is read (and refused for what it is, not its size); a gzip bomb that
    inflates past the limit is a 413, answered at once."""
    path, headers = endpoints()[endpoint]
    status = await edge.judge(lambda: edge.raw(b"POST", path, headers, b"{" * MAX_BODY), genuine=False)
    assert status != 413
    bomb = gzip.compress(b"{" * 50_000_000)
    started = time.monotonic()
    await edge.judge(lambda: edge.raw(b"POST", path, [*headers, (b"Content-Encoding", b"gzip")], bomb),
                     genuine=False, expect={413})
    assert time.monotonic() - started < 5
    small = gzip.compress(b"{}")
    await edge.judge(lambda: edge.raw(b"POST", path, [*headers, (b"Content-Encoding", b"gzip")], small),
                     genuine=False, expect={400, 401, 403})


# ----- the known bugs: each pinned, strict, until it is fixed ---------------------------------------------------------


DEEP_OBJECT = b'{"a":' * 5000 + b"1" + b"}" * 5000


@pytest.mark.parametrize(("edge", "endpoint"), by_platform(
    "wecom_aibot_envelope", "wecom_aibot_plaintext", "dingtalk_robot", "dingtalk_card", "dingtalk_card_content",
    "dingtalk_events", "dingtalk_events_plaintext"), indirect=["edge"])
async def test_bug_deeply_nested_json(edge, endpoint):
    nested = b"[" * 5000 + b"]" * 5000
    if endpoint == "wecom_aibot_envelope":
        send = edge.raw(b"POST", target("/wecom/aibot", fresh_query()), (), nested)
    elif endpoint == "wecom_aibot_plaintext":
        send = post_sealed(edge, "/wecom/aibot", AIBOT_CRYPT, DEEP_OBJECT, aibot_envelope)
    elif endpoint == "dingtalk_robot":
        send = edge.raw(b"POST", b"/dingtalk/callback", robot_headers(), nested)
    elif endpoint == "dingtalk_card":
        send = edge.raw(b"POST", b"/dingtalk/card", (), nested)
    elif endpoint == "dingtalk_card_content":
        body = json.dumps({"outTrackId": "c", "userId": "u", "content": nested.decode()}).encode()
        send = edge.raw(b"POST", b"/dingtalk/card", (), body)
    elif endpoint == "dingtalk_events":
        send = edge.raw(b"POST", target("/dingtalk/events", fresh_query(1000)), (), nested)
    else:
        stamp = str(int(time.time() * 1000))
        encrypt = EVENT_CRYPT.encrypt(DEEP_OBJECT)
        pairs = [("msg_signature", EVENT_CRYPT.signature(stamp, "n", encrypt)), ("timestamp", stamp), ("nonce", "n")]
        send = edge.raw(b"POST", target("/dingtalk/events", pairs), (), aibot_envelope(encrypt))
    await edge.judge(lambda: send, genuine=False, expect={400})


@pytest.mark.parametrize(("gate", "endpoint"), by_platform("dingtalk_msgid", "dingtalk_sender", "wecom_aibot"),
                         indirect=["gate"])
async def test_bug_nul_in_a_delivery_key(gate, endpoint):
    pg_only(gate.engine)
    if endpoint == "wecom_aibot":
        message = dumps(genuine_aibot_message(1) | {"msgid": "m\x00"})
        send = post_sealed(gate, "/wecom/aibot", AIBOT_CRYPT, message, aibot_envelope)
    else:
        field = {"dingtalk_msgid": "msgId", "dingtalk_sender": "senderStaffId"}[endpoint]
        body = dumps(genuine_robot_message(1) | {field: "m\x00"})
        send = gate.raw(b"POST", b"/dingtalk/callback", robot_headers(), body)
    await gate.judge(lambda: send, genuine=True, expect={400})


@pytest.mark.parametrize("request_target", [b"/wecom/callback", b"/dingtalk/card", b"/public/index.html",
                                            b"/healthz", b"/no/such/page"])
async def test_expect_header_not_utf8_is_a_417(dingtalk_edge, request_target):
    """aiohttp's default expect handler echoed a non-UTF-8 value into a text it could not
    encode (a 500 on every route, found or not): the app's own handler answers 417, and
    100-continue still works."""
    response = await raw_request(dingtalk_edge.client, b"POST", request_target, [(b"Expect", b"\xff")], b"{}")
    assert response.status == 417
    response = await raw_request(dingtalk_edge.client, b"GET", b"/healthz", [(b"Expect", b"100-continue")], b"")
    assert response.status == 200


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate"])
@pytest.mark.parametrize(("edge", "endpoint"), by_platform("wecom_app", "dingtalk_robot", "dingtalk_card",
                                                           "dingtalk_events"), indirect=["edge"])
async def test_bug_undecodable_compressed_body(edge, endpoint, encoding):
    path, headers = endpoints()[endpoint]
    await edge.judge(lambda: edge.raw(b"POST", path, [*headers, (b"Content-Encoding", encoding)], b"not compressed"),
                     genuine=False, expect={400})


def test_fuzz_module_helpers_are_sane():
    """The helpers the properties rely on: a rejected known-bug predicate is not over-broad."""
    assert unicode_digits("²") and not unicode_digits("١٢") and not unicode_digits("12")
    assert known_expect_bug([(b"Expect", b"\xff")]) and not known_expect_bug([(b"expect", "中".encode())])

