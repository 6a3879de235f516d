"""The chat side, fuzzed: the command parser (argument soup, round trips of what is
written correctly, command words and mentions, numbers), and whole chat messages and
card clicks from every kind of person through the real router and handlers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import Session

import handlers
from bot.chat.arguments import number
from bot.chat.context import Context
from bot.chat.events import CardAction, Event
from bot.chat.identity import identify
from bot.chat.router import command_word, strip_mentions
from bot.clock import now as clock_now
from bot.outbound import USER, Destination
from bot.refusal import Refusal
from bot.roles import Actor
from bot.rules.arguments import ENGLISH, KEYS, ArgumentError, normalise, parse_arguments, split_list
from storage.models import Assignment, Task
from tests.fuzz.bodies import hostile_text, without_nul
from tests.fuzz.harness import drawn_district, fuzz, is_pg, label, note, pg_only
from tests.support.wecom_bot import ADMIN, APPROVER, INSPECTOR_IDS, LEAD

# ----- the command parser ---------------------------------------------------------------------------------------------

ALL_KEYS = sorted(KEYS) + sorted(ENGLISH)
ARGUMENT_VALUES = (st.sampled_from(["", "1", "0", "-1", "12", "１２", "²", "1_0", "1e3", "是", "否", "2026-01-01",
                                    "9999-12-31", "2026-02-30", "大随机", "小随机", "A01", "A01,A02",
                                    "A01、A02；A03", "U-XY", "S-DC",
                                    "2026-DS-001", "x=y", "=", "「", "」", '"', "“", "1:unsigned", "\x00"])
                   | hostile_text)


@st.composite
def argument_soup(draw) -> str:
    """key=value soup: known and unknown keys, full-width =, quotes open and closed, any spacing."""
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        key = draw(st.sampled_from(ALL_KEYS) | hostile_text)
        value = draw(ARGUMENT_VALUES)
        quote_ = draw(st.sampled_from(["", "", '"', "“", "「"]))
        if quote_:
            closing = {'"': '"', "“": "”", "「": "」"}[quote_]
            value = quote_ + value + draw(st.sampled_from([closing, closing, ""]))
        parts.append(key + draw(st.sampled_from(["=", "＝", " = ", "=="])) + value)
    separator = draw(st.sampled_from([" ", "\u3000", "  ", "\n", "\t", ""]))
    soup = separator.join(parts)
    return draw(st.sampled_from(["", " ", "前缀 "])) + soup if draw(st.booleans()) else soup


@settings(max_examples=200, deadline=None)
@given(source=argument_soup() | hostile_text | st.text(max_size=300),
       allowed=st.frozensets(st.sampled_from(sorted(ENGLISH))))
def test_parse_arguments_parses_or_says_why(source, allowed):
    """Either canonical keys the command takes with string values, or an ArgumentError."""
    try:
        parsed = parse_arguments(source, allowed)
    except ArgumentError as exc:
        assert exc.problem in {"no_key", "unknown_key", "repeated_key", "unclosed_quote"}
        assert isinstance(exc.subject, str) and isinstance(exc.allowed, tuple)
        return
    assert set(parsed.values) <= allowed
    assert all(isinstance(v, str) for v in parsed.values.values())


PLAIN_VALUE = st.text(st.characters(categories=("L", "N"), exclude_characters="\u3000", max_codepoint=0xFEFF)
                      | st.sampled_from(list("-_.,;、:/")), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(values=st.dictionaries(st.sampled_from(sorted(ENGLISH - {"beacon_value"})), PLAIN_VALUE | st.builds(
    lambda a, b: f"{a} {b}", PLAIN_VALUE, PLAIN_VALUE), min_size=1, max_size=5),
       chinese=st.booleans(), separator=st.sampled_from([" ", "\u3000", "  "]),
       quote_=st.sampled_from(['"', "“", "「"]))
def test_well_formed_arguments_round_trip(values, chinese, separator, quote_):
    """What a person writes correctly is read back exactly: plain values, and values with
    spaces in any of the three quotes, under Chinese or English keys."""
    names = {english: chinese_ for chinese_, english in KEYS.items()}
    closing = {'"': '"', "“": "”", "「": "」"}[quote_]
    written = separator.join(f"{names[k] if chinese else k}={quote_ + v + closing if ' ' in v else v}"
                             for k, v in values.items())
    assert parse_arguments(written, frozenset(values)).values == {k: normalise(v) for k, v in values.items()}


@settings(max_examples=200, deadline=None)
@given(message=hostile_text | st.text(max_size=200) | st.builds(lambda m, w, s: m + w + s, st.sampled_from(
    ["", "@双随 ", "@双随\u3000", " @a @b ", "/", "／", "@"]), st.sampled_from(["帮助", "进度", "抽取", "确认"])
    | hostile_text, argument_soup()))
def test_command_word_and_mentions_never_fail(message):
    word = command_word(message)
    assert isinstance(word, str) and not re.search(r"[\s\u3000]", word) and not word.startswith(("/", "／"))
    stripped = strip_mentions(message)
    assert stripped == stripped.strip()
    assert len(normalise(message)) == len(message)
    assert all(part and part == part.strip() for part in split_list(message))


@settings(max_examples=200, deadline=None)
@given(value=st.none() | hostile_text | st.integers(-(10**6), 10**6).map(str)
       | st.sampled_from(["１２", "٣", "1_0", " 7 "]))
def test_number_is_a_positive_whole_number_or_a_refusal(value):
    try:
        found = number(value, "task")
    except Refusal as refusal:
        assert refusal.message in ("missing_argument", "bad_number")
        return
    assert isinstance(found, int) and found > 0


# ----- whole chat messages through the router and handlers ------------------------------------------------------------


@pytest.fixture
def chat(engine, tmp_path, district_settings):
    batch_id = drawn_district(engine, tmp_path, district_settings)
    with Session(engine) as session:
        tasks = list(session.exec(select(Task.id)).scalars())
        on_task = [INSPECTOR_IDS[a.inspector_id] for a in session.exec(select(Assignment)).scalars()]
    off_task = [user for user in INSPECTOR_IDS.values() if user not in on_task]
    return {"engine": engine, "settings": district_settings, "router": handlers.router(), "batch": batch_id,
            "tasks": tasks, "users": [ADMIN, APPROVER, LEAD, on_task[0], on_task[-1], *off_task[:1], "stranger"]}


COMMANDS = sorted({name for route in handlers.router().routes() for name in route.names})
ACTIONS = sorted(handlers.router().actions)


@st.composite
def chat_events(draw, chat_: dict) -> Event:
    """A message (a command with argument soup, or anything at all) or a card click, from
    anyone, privately or in a group."""
    user = draw(st.sampled_from(chat_["users"]))
    known = [chat_["batch"], *map(str, chat_["tasks"])]
    values = st.sampled_from(known) | ARGUMENT_VALUES
    action = None
    words = None
    if draw(st.integers(0, 4)) == 0:
        value = draw(values | st.builds(lambda t, s: f"{t}:{s}", st.sampled_from(known), st.sampled_from(
            ["unsigned", "other", "conflict", "relative", ""]) | hostile_text))
        choices = draw(st.dictionaries(st.sampled_from(["category", "reason"]) | hostile_text,
                                       st.lists(values, max_size=2), max_size=2))
        action = CardAction(card_id=draw(st.sampled_from(["ss-t1-a1", ""]) | hostile_text),
                            action=draw(st.one_of(st.sampled_from(ACTIONS), st.sampled_from(ACTIONS), hostile_text)),
                            value=value, choices=choices,
                            update_token=draw(hostile_text))
    else:
        head = draw(st.one_of(*[st.sampled_from(COMMANDS)] * 4, hostile_text))
        soup = draw(argument_soup())
        soup = re.sub(r"(?<==)1(?=\s|$)", lambda _: draw(st.sampled_from(known)), soup)  # refer to real things
        words = draw(st.sampled_from(["", "/", "／"])) + head + draw(st.sampled_from([" ", "\u3000"])) + soup
        if draw(st.integers(0, 4)) == 0:
            words = draw(hostile_text | st.text(max_size=200))
    if is_pg(chat_["engine"]):  # test_bug_nul_in_a_chat_argument
        words = without_nul(words) if words is not None else None
        if action is not None:
            action = CardAction(without_nul(action.card_id), without_nul(action.action), without_nul(action.value),
                                {without_nul(k): [without_nul(v) for v in vs] for k, vs in action.choices.items()},
                                without_nul(action.update_token))
    chat_type = draw(st.sampled_from(["private", "private", "group"]))
    return Event("wecom", f"fuzz:{draw(st.integers(0, 10**9))}", user, chat_type, Destination("wecom", USER, user),
                 datetime.now(UTC), chat_id="CHAT1" if chat_type == "group" else "", text=words, action=action)


def handle(chat_: dict, event: Event) -> list:
    """The pipeline's handling of one event (identify, route, handler, replies), rolled back."""
    engine, settings_ = chat_["engine"], chat_["settings"]
    with Session(engine, expire_on_commit=False) as session:
        try:
            identity = identify(session, settings_, Actor(event.platform, event.sender))
            ctx = Context(session, settings_, event, identity, clock_now())
            chat_["router"].dispatch(ctx)
            replies = list(ctx._replies)
            ctx.flush()
            return replies
        finally:
            session.rollback()


@fuzz(150)
@given(data=st.data())
def test_chat_messages_never_break_a_handler(chat, data):
    """Random text and argument soup from an admin, an approver, a lead, inspectors on and off
    the drawn tasks and a stranger, and random card clicks: every handler answers (or
    refuses); none raises."""
    chat_event = data.draw(chat_events(chat))
    note(repr(chat_event))
    replies = handle(chat, chat_event)
    route, word = chat["router"].find(Context(None, chat["settings"], chat_event, None, None))
    label(f"route {route.name if route else None}")
    first = replies[0] if replies else None
    label(f"reply {getattr(first, 'text', type(first).__name__)[:10]!r}")


# ----- the known bugs: each pinned, strict, until it is fixed ---------------------------------------------------------


@pytest.mark.parametrize("how", ["command", "click"])
def test_bug_huge_task_number(chat, how):
    inspector = chat["users"][3]
    if how == "command":
        event = Event("wecom", "k", inspector, "private", Destination("wecom", USER, inspector), datetime.now(UTC),
                      text="确认 任务=99999999999999999999")
    else:
        event = Event("wecom", "k", inspector, "private", Destination("wecom", USER, inspector), datetime.now(UTC),
                      action=CardAction("ss-t1-a1", "confirm", "99999999999999999999"))
    handle(chat, event)


@pytest.mark.parametrize("message", ["进度 批次=\x00", "核验 批次=a\x00", "抽取 批次=\x00"])
def test_bug_nul_in_a_chat_argument(engine, district_settings, message):
    pg_only(engine)
    event = Event("wecom", "k", ADMIN, "private", Destination("wecom", USER, ADMIN), datetime.now(UTC), text=message)
    handle({"engine": engine, "settings": district_settings, "router": handlers.router()}, event)  # (no district)

