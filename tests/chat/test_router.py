"""The router's contract with handlers: a refusal undoes the handler's writes and is
answered in the name of the command it belongs to; one fallback, one media handler and
one answer per kind of question; help and suggestions list the router they are given;
an answer is found by the kind of question the bot asked."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from bot.chat import pending
from bot.chat.context import Context
from bot.chat.events import CardAction, Event, Media
from bot.chat.identity import INSPECTOR, Identity
from bot.chat.router import Router, command_word
from bot.outbound import USER, Destination
from bot.refusal import Refusal
from bot.roles import Actor
from handlers import help
from storage.models import AuditEntry, OutboxMessage, PendingInput

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
USER_ID = "u1"
_keys = itertools.count()


def said(session, text: str | None = None, *, chat: str = "private", action: str | None = None,
         photo: bool = False, roles=frozenset({INSPECTOR})) -> Context:
    """A context for one event from ``USER_ID``: typed, a click on ``action``, or a photo."""
    event = Event("console", f"k{next(_keys)}", USER_ID, chat, Destination("console", USER, USER_ID), NOW, text=text,
                  action=CardAction("card-1", action, "7") if action else None,
                  media=Media("image", "m1", sha256="ab" * 32) if photo else None)
    return Context(session, None, event, Identity(Actor("console", USER_ID), frozenset(roles)), NOW)


def dispatched(router: Router, ctx: Context) -> list[str]:
    router.dispatch(ctx)
    return [message.text for message in ctx._replies]


def asked(session) -> str | None:
    found = pending.current(session, "console", USER_ID, NOW)
    return found.kind if found else None


def refused(session) -> list[tuple[str, str]]:
    entries = session.exec(select(AuditEntry).where(AuditEntry.action == "refused").order_by(AuditEntry.seq))
    return [(entry.subject, entry.detail["reason"]) for entry in entries]


def test_a_refusal_undoes_the_handlers_writes_and_is_answered_in_the_name_of_its_command(session):
    router = Router()
    ran = []

    @router.action("recuse_button", of="recuse")
    @router.command("回避", "recuse")
    def recuse(ctx: Context) -> None:
        pending.ask(ctx.session, ctx.event.platform, ctx.event.sender, "recusal_reason", 7, ctx.now)
        ran.append(ctx.event.text)
        if ctx.event.text != "回避 ok":
            raise Refusal("not_on_task", task=7, inspector="I01")

    typed, clicked = said(session, "recuse 任务=7"), said(session, action="recuse_button")
    assert dispatched(router, typed) == [Refusal("not_on_task", task=7, inspector="I01").text()]
    assert dispatched(router, clicked) == [Refusal("not_on_task", task=7, inspector="I01").text()]
    assert len(ran) == 2 and asked(session) is None  # what the handler wrote is undone
    # in the name of the command, also for a click
    assert refused(session) == [("回避", "not_on_task"), ("回避", "not_on_task")]

    dispatched(router, said(session, "回避 ok"))
    assert asked(session) == "recusal_reason"  # without a refusal it stands


def test_a_refusal_is_the_whole_answer_replies_and_messages_before_it_are_undone(session):
    router = Router()

    @router.command("结果", "result")
    def submit(ctx: Context) -> None:
        ctx.reply("已提交")  # collected, not yet sent
        ctx.flush()  # queued in the outbox, inside the handler's savepoint
        ctx.reply("审批卡片已发出")
        raise Refusal("not_on_task", task=7, inspector="I01")

    ctx = said(session, "结果 任务=7")
    assert dispatched(router, ctx) == [Refusal("not_on_task", task=7, inspector="I01").text()]
    ctx.flush()
    session.flush()
    queued = session.exec(select(OutboxMessage)).all()
    assert [row.payload["message"]["text"] for row in queued] == [Refusal("not_on_task", task=7,
                                                                          inspector="I01").text()]


def test_a_malformed_request_is_answered_with_the_right_form_of_its_command(session):
    router = Router()

    @router.command("回避", "recuse")
    def recuse(ctx: Context) -> None:
        raise Refusal("missing_argument", key="task")

    (answer,) = dispatched(router, said(session, "RECUSE"))
    assert answer.startswith(Refusal("missing_argument", key="task").text()) and "例如：回避 任务=12" in answer


def noop(ctx: Context, *asked) -> None:
    pass


def registering(what: str) -> Router:
    router = Router()
    router.command("回避", "recuse")(noop)
    if what == "fallback":
        router.fallback(noop)
    elif what == "media":
        router.media(noop)
    elif what == "answer":
        router.answer("recusal_reason", of="recuse")(noop)
    elif what == "action":
        router.action("recuse", of="回避")(noop)
    return router


@pytest.mark.parametrize("what", ["fallback", "media", "answer", "action"])
def test_include_refuses_a_second_fallback_media_handler_answer_or_action(what):
    joined = Router()
    joined.include(registering(what))
    second = registering(what)
    second.commands.clear()  # (not the command: a duplicate command is refused too)
    with pytest.raises(ValueError, match="second|twice"):
        joined.include(second)
    with pytest.raises(ValueError, match="command '回避' registered twice"):
        joined.include(registering("command"))


def test_a_second_fallback_or_a_button_of_no_command_is_refused_on_one_router():
    router = registering("fallback")
    with pytest.raises(ValueError, match="second fallback"):
        router.fallback(noop)
    with pytest.raises(ValueError, match="no command '完成'"):
        router.action("done", of="完成")(noop)
    with pytest.raises(ValueError, match="no command '完成'"):
        router.answer("evidence", of="完成", media=True)(noop)


def bot_with(*names: str) -> Router:
    feature = Router()
    for name in names:
        feature.command(name)(noop)
    joined = Router()
    joined.include(help.router)
    joined.include(feature)
    return joined


def test_help_and_the_suggestion_list_the_routes_of_the_router_they_are_given(session):
    alpha, bravo = bot_with("alpha"), bot_with("bravo")
    (listed,) = dispatched(alpha, said(session, "帮助"))
    assert "· 帮助（help）" in listed and "· alpha" in listed and "bravo" not in listed
    (listed,) = dispatched(bravo, said(session, "help"))
    assert "· bravo" in listed and "alpha" not in listed
    assert dispatched(bravo, said(session, "")) == [listed]  # an empty message gets the help
    (answer,) = dispatched(alpha, said(session, "alpah"))
    assert "没有「alpah」这个命令" in answer and "您是不是想用「alpha」" in answer
    assert "alpha" not in dispatched(bravo, said(session, "alpah"))[0].replace("alpah", "")


def test_an_answer_is_dispatched_by_the_kind_of_question_asked(session):
    router = bot_with()
    feature = Router()
    answered = []
    feature.command("回避", "recuse")(noop)
    feature.command("取证", "evidence")(noop)

    @feature.answer("recusal_reason", of="recuse")
    def reason(ctx: Context, question: PendingInput) -> None:
        answered.append(("reason", question.task_id, ctx.event.text))
        if ctx.event.text == "不行":
            raise Refusal("not_on_task", task=question.task_id, inspector="I01")

    @feature.answer("evidence", of="evidence", media=True)
    def photo(ctx: Context, question: PendingInput) -> None:
        answered.append(("photo", question.task_id, ctx.event.media.media_id))
        raise Refusal("not_on_task", task=question.task_id, inspector="I01")

    @feature.media
    def unasked(ctx: Context) -> None:
        answered.append(("unasked", None, ctx.event.media.media_id))

    router.include(feature)

    def ask(kind: str) -> None:
        pending.ask(session, "console", USER_ID, kind, 7, NOW)

    ask("recusal_reason")
    in_group = dispatched(router, said(session, "亲属关系", chat="group"))  # a group message is no answer
    assert "没有「亲属关系」这个命令" in in_group[0]
    dispatched(router, said(session, "亲属关系"))
    assert answered == [("reason", 7, "亲属关系")]
    dispatched(router, said(session, photo=True))  # a photo does not answer a typed question
    assert answered[-1] == ("unasked", None, "m1")

    dispatched(router, said(session, "不行"))  # refused: not asked again
    assert answered[-1] == ("reason", 7, "不行") and asked(session) is None
    assert refused(session) == [("回避", "not_on_task")]

    ask("evidence")
    assert "没有「亲属关系」这个命令" in dispatched(router, said(session, "亲属关系"))[0]  # text is no photo
    dispatched(router, said(session, photo=True, chat="group"))
    assert answered[-1] == ("photo", 7, "m1") and asked(session) == "evidence"  # photos keep coming
    assert refused(session)[-1] == ("取证", "not_on_task")


MARKUP = ["[点我](http://evil)", "**紧急**", '<font color="warning">通知</font>', "#标题", "`x`", "![图](http://e/i.png)",
          "http://evil.example/x"]


@pytest.mark.parametrize("typed", MARKUP)
@pytest.mark.parametrize("fallback", [True, False])
def test_a_typed_word_is_said_back_in_a_group_as_inert_text(session, typed, fallback):
    """Group answers are markdown: an unknown command word must not come back as a link or markup."""
    router = bot_with("alpha") if fallback else Router()
    (answer,) = dispatched(router, said(session, f"{typed} 其他", chat="group"))
    assert "没有「" in answer and "这个命令" in answer
    for marker in ("](", "[", "**", "<font", "`", "http://", "#", "!"):
        assert marker not in answer, (marker, answer)
    (private,) = dispatched(router, said(session, typed))  # a private answer is plain text: as typed
    assert f"没有「{command_word(typed)}」这个命令" in private


@pytest.mark.parametrize("typed", MARKUP)
def test_a_typed_word_of_someone_without_a_role_is_said_back_in_a_group_as_inert_text(session, typed):
    (answer,) = dispatched(bot_with("alpha"), said(session, typed, chat="group", roles=frozenset()))
    assert "没有在本系统中登记角色" in answer
    for marker in ("](", "[", "**", "<font", "`", "http://"):
        assert marker not in answer, (marker, answer)
    assert refused(session) == [(command_word(typed), "no role")]  # the audit keeps what was typed


def test_a_long_word_is_cut_in_a_group(session):
    (answer,) = dispatched(bot_with(), said(session, "长" * 500, chat="group"))
    assert "长" * 20 + "…」" in answer and "长" * 21 not in answer
