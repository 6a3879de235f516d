"""The chat commands of SPEC §5 through the real app and the fake WeCom: help by role,
aliases and normalisation, parse errors, suggestions, roles before arguments,
private-only commands, 谁检查、谁录入, approvers of their own units, idempotent actions,
recusal reasons, results of category 6, 核验/进度 and evidence photos.

The batches are set up through the service layer (as ``shuangsui batch`` would) on the
real clock; only the behaviour under test goes through chat."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

import pytest

from bot.app import SETTINGS, create_app
from bot.batches import create
from bot.batches.recusal import recuse
from bot.clock import bureau_today
from bot.clock import now as clock_now
from bot.rules.arguments import parse_arguments
from storage.db import transaction
from storage.models import (
    Assignment,
    AuditEntry,
    Batch,
    Conflict,
    Evidence,
    FollowUp,
    Result,
    Task,
)
from tests.support.batches import published_batch, rows, team
from tests.support.chat_tasks import (
    USER_OF,
    confirmed,
    drawn,
    help_routes,
    inspected,
    outsider,
    refusals,
    service,
    state,
)
from tests.support.wecom_bot import ADMIN, APPROVER, LEAD, Walk

# SPEC §5, with 取证 (evidence) and 更正 (correct); the bot may have more
EVERY_COMMAND = ["帮助", "新建抽查", "追加分层", "公示方案", "抽取", "撤销", "进度", "核验", "确认", "回避", "完成",
                 "取证", "结果", "批准", "退回", "更正"]
INSPECTOR_COMMANDS = {"帮助", "进度", "核验", "确认", "回避", "完成", "取证", "结果"}
APPROVER_COMMANDS = {"帮助", "进度", "核验", "批准", "退回", "更正"}


def every_line(help_text: str) -> list[tuple[str, str]]:
    """The commands a help text lists, each with its example line, as often as listed."""
    lines = help_text.splitlines()
    found = []
    for n, line in enumerate(lines):
        if line.startswith("· "):
            name = re.match(r"· (\S+?)[（：]", line).group(1)
            example = lines[n + 1].strip() if n + 1 < len(lines) else ""
            found.append((name, example))
    return found


def listed(help_text: str) -> list[tuple[str, str]]:
    """The commands a help text lists, each once."""
    first: dict[str, str] = {}
    for name, example in every_line(help_text):
        first.setdefault(name, example)
    return list(first.items())


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# ----- 帮助, aliases, normalisation ---------------------------------------------------------------------------------


async def test_help_lists_only_what_the_callers_roles_allow_each_with_an_example(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    routes = {route.names[0]: route.roles for route in help_routes(bot)}  # as registered (read, not rebuilt)
    assert set(EVERY_COMMAND) <= set(routes)

    inspector = [name for name, _ in listed(await walk.say(USER_OF["I01"], "帮助"))]
    assert INSPECTOR_COMMANDS <= set(inspector)
    assert not {"新建抽查", "追加分层", "公示方案", "抽取", "撤销", "批准", "退回", "更正"} & set(inspector)
    assert all(not routes[name] or "inspector" in routes[name] for name in inspector), inspector

    admin = listed(await walk.say(ADMIN, "帮助"))
    assert [name for name, _ in admin] == list(routes)  # everything, in the order registered
    approver = listed(await walk.say(APPROVER, "帮助"))
    assert APPROVER_COMMANDS <= {name for name, _ in approver}
    assert not {"新建抽查", "抽取", "确认", "回避", "完成", "结果"} & {name for name, _ in approver}
    assert all(not routes[name] or "approver" in routes[name] for name, _ in approver), approver
    for name, example in admin + approver + [(n, e) for n, e in listed(await walk.say(USER_OF["I02"], "help"))]:
        assert example.startswith(f"例：{name}"), f"{name} has no example: {example!r}"

    stranger = await walk.say("stranger", "帮助")
    assert "帮助" in stranger and "没有在本系统中登记角色" in stranger and not listed(stranger)
    assert not wecom.dropped


async def test_help_lists_each_command_once_even_with_a_second_app_in_the_process(bot, wecom, engine):
    create_app(bot[SETTINGS], engine, workers=False)  # e.g. a second instance embedded in the same process
    walk = Walk(wecom, engine, bot)
    answer = await walk.say(ADMIN, "帮助")
    names = [name for name, _ in every_line(answer)]
    assert len(names) == len(set(names)), f"help lists commands repeatedly: {names}"
    assert not answer.endswith("…"), "the admin's help was cut"


async def test_english_aliases_any_case_full_width_forms_and_the_mention(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    chinese = await walk.say(USER_OF["I01"], "帮助")
    for alias in ("help", "HELP", "Help", "/help", "／帮助"):
        assert await walk.say(USER_OF["I01"], alias) == chinese, alias
    assert "没有进行中" in await walk.say(ADMIN, "Status")

    batch_id, tasks = await drawn(bot, engine, "数量=3 方式=交叉随机")
    for text in (f"status batch={batch_id}", f"STATUS 批次={batch_id}", f"进度\u3000批次＝{batch_id}",
                 f"进度 {full_width('batch=')}{batch_id}"):
        answer = await walk.say(ADMIN, text)
        assert batch_id in answer and "共 3 项任务" in answer and "待确认 3" in answer, text

    # full-width digits and ＝ in a task id, with an ideographic space: 确认　任务＝１２
    task = tasks[0]
    member = team(engine, task.id)[0]
    answer = await walk.say(USER_OF[member], f"确认\u3000任务＝{full_width(str(task.id))}")
    assert f"已记录：您与任务 {task.id}" in answer
    assert rows(engine, Assignment, Assignment.task_id == task.id, Assignment.inspector_id == member)[0].status \
        == "confirmed"

    # in a group the @-mention is stripped, also before a full-width space; a bare mention gets help
    group_help = await walk.group(ADMIN, "@双随 help")
    assert "群里请先 @我" in group_help and [n for n, _ in listed(group_help)] == [
        route.names[0] for route in help_routes(bot)]
    assert "群里请先 @我" in await walk.group(ADMIN, "@双随")
    assert "共 3 项任务" in await walk.group(ADMIN, f"@双随\u3000STATUS 批次＝{batch_id}")


# ----- parse errors, suggestions -------------------------------------------------------------------------------------


async def test_a_parse_error_names_the_bad_key_and_shows_the_right_form(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    answer = await walk.group(ADMIN, "@双随 新建抽查 颜色=红 名称=x")
    assert "「颜色」" in answer and "名称=" in answer and "正确写法，例如：新建抽查 名称=" in answer
    answer = await walk.say(ADMIN, "新建抽查 名称=x 名称=y")
    assert "写了两次" in answer and "正确写法" in answer
    answer = await walk.say(ADMIN, '撤销 批次=1 原因="没有闭合')
    assert "引号没有闭合" in answer and "例如：撤销 批次=" in answer
    assert rows(engine, Batch) == []

    inspector = USER_OF["I02"]
    answer = await walk.say(inspector, "确认")
    assert "缺少参数 任务=" in answer and "正确写法，例如：确认 任务=12" in answer
    answer = await walk.say(inspector, "完成 任务=abc")
    assert "任务「abc」不是有效的编号" in answer and "例如 任务=12" in answer
    answer = await walk.say(inspector, "结果 12 类别=1")
    assert "「12」前面缺少参数名" in answer and "例如：结果 任务=" in answer
    answer = await walk.say(inspector, "回避 颜色=红 任务=1")
    assert "「颜色」" in answer and "例如：回避 任务=" in answer


@pytest.mark.parametrize("typed, suggested", [("抽去", "抽取"), ("hlep", "help"), ("新建抽察", "新建抽查"),
                                              ("statsu", "status"), ("结过", "结果")])
async def test_an_unknown_command_suggests_the_closest_one(bot, wecom, engine, typed, suggested):
    walk = Walk(wecom, engine, bot)
    answer = await walk.say(ADMIN, f"{typed} 批次=1")
    assert f"没有「{typed}」这个命令" in answer and f"您是不是想用「{suggested}」" in answer and "帮助" in answer


# ----- who may do what ----------------------------------------------------------------------------------------------


async def test_roles_are_checked_before_arguments_and_refusals_are_audited(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    garbage = "新建抽查 颜色=红 这不是参数 名称="
    answer = await walk.say("stranger", garbage)
    assert "「新建抽查」" in answer and "没有在本系统中登记角色" in answer and "参数" not in answer
    (entry,) = refusals(engine, "stranger")
    assert (entry.subject, entry.detail["reason"]) == ("新建抽查", "no role")

    inspector = USER_OF["I03"]
    answer = await walk.say(inspector, garbage)
    assert "「新建抽查」需要管理员的身份" in answer and "参数" not in answer and "此次尝试已记录" in answer
    answer = await walk.say(inspector, "批准 任务=不是数字")
    assert "「批准」需要" in answer and "审批人" in answer and "编号" not in answer
    assert [(e.subject, e.detail["reason"], e.detail["needs"]) for e in refusals(engine, inspector)] == [
        ("新建抽查", "role", ["admin"]), ("批准", "role", ["approver", "lead"])]
    answer = await walk.say(APPROVER, "结果 任务=x")
    assert "「结果」需要执法检查人员的身份" in answer
    assert rows(engine, Batch) == [] and rows(engine, Result) == []


async def test_private_only_commands_are_refused_in_a_group(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, (task, other) = await drawn(bot, engine)
    user = USER_OF[await inspected(engine, task.id)]  # may enter the result of ``task`` — in private
    await confirmed(engine, other.id)
    other_user = USER_OF[team(engine, other.id)[0]]  # may mark ``other`` done — in private
    before = state(engine)
    for who, command, name in ((other_user, f"完成 任务={other.id}", "完成"),
                               (other_user, f"done task={other.id}", "完成"),
                               (user, f"结果 任务={task.id} 类别=1 签字=是", "结果"),
                               (user, f"回避 任务={task.id} 原因=x", "回避"), (user, f"取证 任务={task.id}", "取证")):
        answer = await walk.group(who, f"@双随 {command}")
        assert f"「{name}」只能在与我的私聊中使用" in answer, command
    assert "「批准」只能在与我的私聊中使用" in await walk.group(APPROVER, f"@双随 批准 任务={task.id}")
    assert state(engine) == before
    assert walk.texts(user) == [] and walk.texts(other_user) == [], "nothing was said in private either"


@pytest.mark.parametrize("user", [APPROVER, "stranger"])  # unknown command; no role
async def test_a_typed_word_does_not_come_back_as_markdown_in_a_group(bot, wecom, engine, user):
    walk = Walk(wecom, engine, bot)
    answer = await walk.group(user, "@双随 [点我](http://evil)")
    assert "[点我]" not in answer and "](" not in answer and "http://" not in answer, answer
    answer = await walk.group(user, '@双随 **<font color="warning">紧急</font>**')
    assert "**" not in answer and "<font" not in answer, answer


async def test_inspectors_act_only_on_their_own_tasks(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    task = tasks[0]
    await inspected(engine, task.id)
    waiting = tasks[1]
    await confirmed(engine, waiting.id)
    stranger = outsider(engine, tasks)
    user = USER_OF[stranger]
    before = state(engine)
    for command, name in ((f"完成 任务={waiting.id}", "完成"), (f"结果 任务={task.id} 类别=1 签字=是", "结果"),
                          (f"回避 任务={task.id} 原因=想换个任务", "回避"), (f"取证 任务={task.id}", "取证")):
        answer = await walk.say(user, command)
        assert f"{stranger} 不是任务" in answer, command
    after = state(engine)
    assert after["audit"] == before["audit"] + 4
    assert {k: v for k, v in after.items() if k != "audit"} == {k: v for k, v in before.items() if k != "audit"}
    assert [(e.subject, e.detail["reason"], e.detail["inspector"]) for e in refusals(engine, user)] == [
        ("完成", "not_on_task", stranger), ("结果", "not_on_task", stranger), ("回避", "not_on_task", stranger),
        ("取证", "not_on_task", stranger)]
    # a photo then goes nowhere: no task was chosen
    assert "取证 任务=" in await walk.photo(user, b"\xff\xd8 not my task")
    assert rows(engine, Evidence) == []


async def test_approvers_decide_only_for_their_own_units_and_the_lead_office_may(start_bot, wecom, engine):
    app = await start_bot({"admins": [ADMIN], "units": {"S-XC": {"approvers": [APPROVER]}, "U-XY": {"leads": [LEAD]}}})
    walk = Walk(wecom, engine, app)
    # 小随机 within 东城所's jurisdiction: every task is led by an inspector of S-DC, whose unit has no approver
    _, tasks = await drawn(app, engine, "数量=2 方式=小随机 管辖=S-DC")
    assert {i for t in tasks for i in team(engine, t.id)} <= {"I01", "I02", "I03", "I04"}
    first, second = tasks
    for task in tasks:
        lead = await inspected(engine, task.id)
        assert "等待审批" in await walk.say(USER_OF[lead], f"结果 任务={task.id} 类别=1 签字=是")
    results = {r.task_id: r for r in rows(engine, Result)}
    # the approval cards went to the lead office (S-DC has no approvers), not to 西城所's approver
    assert walk.cards(LEAD, f"ss-apr{results[first.id].id}-") and not walk.cards(APPROVER, "ss-apr")

    before = state(engine)
    answer = await walk.say(APPROVER, f"批准 任务={first.id}")
    assert f"任务 {first.id} 的结果应由主办检查人员所在单位的审批人" in answer and "此次尝试已记录" in answer
    answer = await walk.say(APPROVER, f"退回 任务={second.id} 原因=不合格")
    assert "您不在其列" in answer
    after = state(engine)
    assert after["results"] == before["results"] and after["tasks"] == before["tasks"]
    assert [(e.subject, e.detail["reason"]) for e in refusals(engine, APPROVER)] == [
        ("批准", "not_your_unit"), ("退回", "not_your_unit")]

    assert "已批准" in await walk.say(LEAD, f"批准 任务={first.id}")
    assert "已退回" in await walk.say(LEAD, f"退回 任务={second.id} 原因=请补充说明")
    statuses = {r.task_id: (r.status, r.decided_by) for r in rows(engine, Result)}
    assert statuses == {first.id: ("approved", f"wecom:{LEAD}"), second.id: ("returned", f"wecom:{LEAD}")}


async def test_a_recused_member_holding_a_deciding_role_is_refused_and_audited(start_bot, wecom, engine):
    """Nobody decides on their own work (art. 14, 20): a team member who recused and also
    approves for the unit (and leads an office) is refused 批准, 退回, 更正 — audited."""
    station = [f"wecom:{USER_OF[i]}" for i in ("I01", "I02", "I03", "I04")]  # 东城所's inspectors
    app = await start_bot({"admins": [ADMIN], "units": {"S-DC": {"approvers": [APPROVER, *station],
                                                                  "leads": station},
                                                         "U-XY": {"leads": [LEAD, *station]}}})
    walk = Walk(wecom, engine, app)
    _, (task, _) = await drawn(app, engine, "数量=2 方式=小随机 管辖=S-DC")
    member = team(engine, task.id)[1]
    member_user = USER_OF[member]
    assert "回避" in await walk.say(member_user, f"回避 任务={task.id} 原因=亲属关系")
    assert member not in team(engine, task.id)
    lead = await inspected(engine, task.id)
    assert "等待审批" in await walk.say(USER_OF[lead], f"结果 任务={task.id} 类别=1 签字=是")
    # the approval card goes to the unit's other approvers, never to anyone ever on the team
    (result,) = rows(engine, Result, Result.task_id == task.id)
    ever = {a.inspector_id for a in rows(engine, Assignment, Assignment.task_id == task.id)}
    assert walk.cards(APPROVER, f"ss-apr{result.id}-")
    assert not [i for i in ever if walk.cards(USER_OF[i], f"ss-apr{result.id}-")], "asked to approve own work"
    assert {i for i in ("I01", "I02", "I03", "I04") if walk.cards(USER_OF[i], f"ss-apr{result.id}-")} == \
        {"I01", "I02", "I03", "I04"} - ever
    before = state(engine)
    for command in (f"批准 任务={task.id}", f"退回 任务={task.id} 原因=不行"):
        assert "不能审批、退回或更正" in await walk.say(member_user, command), command
    assert state(engine)["results"] == before["results"]
    assert "已批准" in await walk.say(APPROVER, f"批准 任务={task.id}")
    before = state(engine)
    answer = await walk.say(member_user, f"更正 任务={task.id} 类别=5 原因=录入错误")
    assert "不能审批、退回或更正" in answer and "此次尝试已记录" in answer
    assert state(engine)["results"] == before["results"]
    assert [(e.subject, e.detail["reason"]) for e in refusals(engine, member_user)] == [
        ("批准", "own_result"), ("退回", "own_result"), ("更正", "own_result")]


async def test_a_lead_of_another_office_may_not_transfer_and_is_audited(start_bot, wecom, engine):
    """移送 belongs to the batch's lead office (U-XY here) or an admin (art. 18, 23)."""
    app = await start_bot({"admins": [ADMIN], "units": {"S-DC": {"approvers": [APPROVER], "leads": ["stranger"]},
                                                         "S-XC": {"approvers": [APPROVER]},
                                                         "U-XY": {"leads": [LEAD]}}})
    walk = Walk(wecom, engine, app)
    _, (task, _) = await drawn(app, engine)
    lead = await inspected(engine, task.id)
    assert "等待审批" in await walk.say(USER_OF[lead], f"结果 任务={task.id} 类别=8 签字=是")
    assert "已批准" in await walk.say(APPROVER, f"批准 任务={task.id}")
    command = f"移送 任务={task.id} 机关=「区公安分局」 司法=是"
    answer = await walk.say("stranger", command)
    assert "只能由其批次的牵头科室负责人或管理员移送" in answer
    assert not rows(engine, FollowUp, FollowUp.kind == "transfer_judiciary")
    assert [(e.subject, e.detail["reason"]) for e in refusals(engine, "stranger")] == [("移送", "not_lead_office")]
    assert "已记录" in await walk.say(LEAD, command)
    assert "已记录" in await walk.say(ADMIN, command.replace("区公安分局", "区税务局"))
    assert len(rows(engine, FollowUp, FollowUp.kind == "transfer_judiciary")) == 2


# ----- idempotent actions -------------------------------------------------------------------------------------------


async def test_repeated_confirm_and_done_say_so_and_change_nothing(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    task = tasks[0]
    lead, partner = team(engine, task.id)
    answer = await walk.say(USER_OF[lead], f"完成 任务={task.id}")
    assert "全组确认后才能开始检查" in answer  # art. 12: not before the whole team declared
    assert "已记录" in await walk.say(USER_OF[partner], f"确认 任务={task.id}")
    before = state(engine)
    answer = await walk.say(USER_OF[partner], f"确认 任务={task.id}")
    assert "此前已确认" in answer and "无需重复操作" in answer
    assert state(engine) == before

    assert "任务已接受" in await walk.say(USER_OF[lead], f"confirm task={task.id}")
    today = bureau_today()
    for day in (today + timedelta(days=1), today - timedelta(days=1)):  # not in the future, not before the draw
        answer = await walk.say(USER_OF[lead], f"完成 任务={task.id} 日期={day.isoformat()}")
        assert f"检查日期 {day.isoformat()} 不对" in answer and f"今天 {today.isoformat()}" in answer
    assert "不是日期" in await walk.say(USER_OF[lead], f"完成 任务={task.id} 日期=明天")
    assert rows(engine, Task, Task.id == task.id)[0].status == "accepted"
    assert "检查完成" in await walk.say(USER_OF[lead], f"完成 任务={task.id}")
    assert len(walk.cards(USER_OF[lead], f"ss-res{task.id}-")) == 1
    before = state(engine)
    for user in (lead, partner):  # again by the lead, then by the partner on another day
        answer = await walk.say(USER_OF[user], f"完成 任务={task.id} 日期={bureau_today().isoformat()}")
        assert f"任务 {task.id} 已于 {bureau_today().isoformat()} 标记检查完成" in answer
    assert state(engine) == before
    assert len(walk.cards(USER_OF[lead], f"ss-res{task.id}-")) == 1 and not walk.cards(USER_OF[partner], "ss-res")


async def test_a_repeated_approval_by_card_changes_nothing(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    task = tasks[0]
    lead = await inspected(engine, task.id)
    assert "等待审批" in await walk.say(USER_OF[lead], f"结果 任务={task.id} 类别=2 签字=是")
    (result,) = rows(engine, Result)
    (card,) = walk.cards(APPROVER, f"ss-apr{result.id}-")
    answer = await walk.click(APPROVER, card, f"approve:{result.id}")
    assert "已批准" in answer and "经营异常名录" in answer
    before = state(engine)
    # WeCom delivers the click again (a platform retry): handled once
    retry = next(c for c in reversed(wecom.callbacks) if c["path"] == wecom.app_callback_path)
    await wecom.post_raw(wecom.app_callback_path, params=retry["params"], body=retry["body"])
    await walk.quiet()
    assert state(engine) == before and len(rows(engine, FollowUp)) == 1
    assert wecom.card_state[card["task_id"]]["replaced"] == "已批准并公示"


async def test_a_repeated_approval_by_command_says_it_was_already_approved(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    task = tasks[0]
    lead = await inspected(engine, task.id)
    assert "等待审批" in await walk.say(USER_OF[lead], f"结果 任务={task.id} 类别=5 签字=是")
    assert "已批准" in await walk.say(APPROVER, f"批准 任务={task.id}")
    before = state(engine)
    answer = await walk.say(APPROVER, f"批准 任务={task.id}")
    assert state(engine) == before
    assert "此前已批准" in answer, f"a repeated 批准 does not say it was already approved: {answer!r}"


async def test_a_repeated_recusal_by_command_says_so_and_changes_nothing(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    task = tasks[0]
    leaving = team(engine, task.id)[0]
    assert "替补" in await walk.say(USER_OF[leaving], f"回避 任务={task.id} 原因=亲属关系")
    before = state(engine)
    answer = await walk.say(USER_OF[leaving], f"回避 任务={task.id} 原因=亲属关系")
    assert "此前已申请回避" in answer, f"a repeated 回避 does not say so: {answer!r}"
    assert state(engine) == before, "a repeated 回避 wrote something (an audited refusal)"


# ----- recusal ------------------------------------------------------------------------------------------------------


async def test_a_recusal_without_a_reason_asks_for_it_and_takes_the_next_message(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    task = tasks[0]
    leaving, partner = team(engine, task.id)
    answer = await walk.say(USER_OF[leaving], f"回避 任务={task.id}")
    assert "请直接回复回避原因" in answer and str(task.id) in answer
    assert rows(engine, Assignment, Assignment.status == "recused") == []
    answer = await walk.say(USER_OF[leaving], "与该企业负责人系同学")
    assert f"已记录您对任务 {task.id} 的回避申请" in answer and "替补" in answer and "这个命令" not in answer
    (recused,) = rows(engine, Assignment, Assignment.status == "recused")
    assert (recused.inspector_id, recused.recusal_reason) == (leaving, "与该企业负责人系同学")
    (conflict,) = rows(engine, Conflict, Conflict.origin == "recusal")
    assert (conflict.inspector_id, conflict.object_id, conflict.reason) == (leaving, task.object_id,
                                                                            "与该企业负责人系同学")
    (replacement,) = rows(engine, Assignment, Assignment.task_id == task.id, Assignment.origin == "replacement")
    assert walk.cards(USER_OF[replacement.inspector_id], f"ss-t{task.id}-a{replacement.id}")
    assert any("已申请回避" in t for t in walk.texts(USER_OF[partner]))
    # the question was answered once: the next message is an ordinary one again
    assert "没有「与该企业负责人系同学」这个命令" in await walk.say(USER_OF[leaving], "与该企业负责人系同学")


async def test_a_recusal_when_nobody_is_left_leaves_the_task_unstaffed_and_says_so(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    batch_id, (task,) = await drawn(bot, engine, "数量=1 方式=小随机")
    today = bureau_today()
    for _ in range(2):  # a station of four: the two replacements are used up first
        member = team(engine, task.id)[0]
        await service(engine, lambda s, m=member: recuse(s, "test", task.id, m, "其他", today, clock_now()))
    last = team(engine, task.id)[0]
    answer = await walk.say(USER_OF[last], f"回避 任务={task.id} 原因=曾在该企业任职")
    assert "暂无符合条件的替补人员" in answer and "牵头科室" in answer
    assert rows(engine, Task, Task.id == task.id)[0].status == "unstaffed"
    assert any("没有符合条件的替补人员" in t for t in walk.texts(LEAD))
    assert any("没有符合条件的替补人员" in str(m) for m in wecom.group_messages)
    assert "缺人员 1" in await walk.say(ADMIN, f"进度 批次={batch_id}")


# ----- results ------------------------------------------------------------------------------------------------------


async def test_result_rules_by_command(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    task = tasks[0]
    user = USER_OF[await inspected(engine, task.id)]
    answer = await walk.say(user, f"结果 任务={task.id} 类别=6 说明=拒不开门")
    assert "第十九条" in answer and "情形=1" in answer and "4 其他阻挠妨碍" in answer
    answer = await walk.say(user, f"结果 任务={task.id} 类别=6 情形=7")
    assert "第十九条" in answer
    answer = await walk.say(user, f"结果 任务={task.id} 类别=1 签字=否")
    assert "未签字的，须注明原因" in answer and "原因=" in answer
    answer = await walk.say(user, f"结果 任务={task.id} 类别=1 情形=2")
    assert "情形= 只用于类别 6" in answer
    answer = await walk.say(user, f"结果 任务={task.id} 类别=9")
    assert "结果类别「9」无效" in answer
    answer = await walk.say(user, f"结果 任务={task.id} 类别=1 签字=也许")
    assert "签字「也许」无效" in answer
    assert rows(engine, Result) == []
    answer = await walk.say(user, f"结果 任务={task.id} 类别=6 情形=3 签字=否 原因=「负责人拒绝签字 也不盖章」")
    assert "等待审批" in answer
    (result,) = rows(engine, Result)
    assert (result.category, result.noncooperation_case, result.signed, result.unsigned_reason) == (
        6, 3, False, "负责人拒绝签字 也不盖章")


async def test_category_6_by_card_asks_for_the_case_and_then_submits(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    signed_task, unsigned_task = tasks
    for task in tasks:
        await confirmed(engine, task.id)
        lead = USER_OF[team(engine, task.id)[0]]
        assert "检查完成" in await walk.say(lead, f"完成 任务={task.id}")

    user = USER_OF[team(engine, signed_task.id)[0]]
    (card,) = walk.cards(user, f"ss-res{signed_task.id}-1")
    answer = await walk.click(user, card, f"result:{signed_task.id}:signed", selections={"category": ["6"]})
    assert "第十九条" in answer and "请回复数字" in answer
    assert wecom.card_state[card["task_id"]]["replaced"] == "请在对话中补充信息"
    assert rows(engine, Result) == []
    assert "请回复数字" in await walk.say(user, "5")  # not one of the four cases: asked again
    assert "请回复任务" in await walk.say(user, "第2项")  # then the remarks (issue 19 item 8)
    answer = await walk.say(user, "无")
    assert "等待审批" in answer
    (result,) = rows(engine, Result)
    assert (result.task_id, result.category, result.noncooperation_case, result.signed) == (signed_task.id, 6, 2,
                                                                                            True)
    (approval,) = walk.cards(APPROVER, f"ss-apr{result.id}-")
    assert "第十九条第（二）项" in json.dumps(approval["card"], ensure_ascii=False)

    user = USER_OF[team(engine, unsigned_task.id)[0]]
    (card,) = walk.cards(user, f"ss-res{unsigned_task.id}-1")
    answer = await walk.click(user, card, f"result:{unsigned_task.id}:unsigned", selections={"category": ["6"]})
    assert "请回复数字" in answer
    assert "未签字、也未盖章的原因" in await walk.say(user, "1")
    assert "见证" in await walk.say(user, "负责人拒绝签字")  # unsigned: a witness, then the remarks
    assert "请回复任务" in await walk.say(user, "无")
    assert "等待审批" in await walk.say(user, "无")
    result = rows(engine, Result, Result.task_id == unsigned_task.id)[0]
    assert (result.category, result.noncooperation_case, result.signed, result.unsigned_reason) == (
        6, 1, False, "负责人拒绝签字")


# ----- 核验, 进度 ---------------------------------------------------------------------------------------------------


async def test_verify_says_the_draw_matches_and_progress_shows_counts(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    batch_id, tasks = await drawn(bot, engine, "数量=3 方式=交叉随机")
    answer = await walk.group(ADMIN, f"@双随 核验 批次={batch_id}")
    assert f"核验批次 {batch_id}" in answer and "一致" in answer and "不一致" not in answer
    assert "一致" in await walk.say(USER_OF[team(engine, tasks[0].id)[0]], f"verify batch={batch_id}")

    progress = await walk.group(ADMIN, f"@双随 进度 批次={batch_id}")
    assert "共 3 项任务" in progress and "待确认 3" in progress and "没有逾期事项" in progress
    await confirmed(engine, tasks[0].id)
    await inspected(engine, tasks[1].id)
    progress = await walk.say(ADMIN, f"进度 批次={batch_id}")
    assert "待确认 1" in progress and "已接受 1" in progress and "已检查 1" in progress
    assert batch_id in await walk.say(ADMIN, "进度")  # every batch in progress

    assert "缺少参数 批次=" in await walk.say(ADMIN, "核验")
    assert "没有批次 NOPE" in await walk.say(ADMIN, "核验 批次=NOPE")
    assert "没有批次 NOPE" in await walk.say(ADMIN, "进度 批次=NOPE")
    draft = await asyncio.to_thread(_new_draft, engine, bot[SETTINGS])
    assert "抽取之后才能导出" in await walk.say(ADMIN, f"核验 批次={draft}")


async def test_a_draw_that_cannot_staff_is_audited_and_its_answer_names_no_object(bot, wecom, engine):
    """Every draw attempt leaves a trace, and a refused one does not reveal what it selected
    (whoever read it could cancel and publish again until the selection suits them)."""
    walk = Walk(wecom, engine, bot)
    batch_id = await asyncio.to_thread(published_batch, engine, bot[SETTINGS], "事项=A01 数量=3 方式=小随机 人数=5")
    answer = await walk.say(ADMIN, f"抽取 批次={batch_id}")
    assert "抽取未完成" in answer and "分层 main" in answer and "小随机" in answer and "人员不足" in answer
    assert not re.search(r"9115060200000\d{5}|对象\d|S-DC|S-XC", answer), answer
    entries = rows(engine, AuditEntry, AuditEntry.action == "draw.refused")
    assert [(e.actor, e.subject, e.detail["refusal"], e.detail["stratum"], e.detail["mode"]) for e in entries] == [
        (f"wecom:{ADMIN}", batch_id, "cannot_staff", "main", "unit")]
    assert not re.search(r"9115060200000\d{5}", json.dumps(entries[0].detail))
    assert rows(engine, Batch, Batch.id == batch_id)[0].status == "published"
    assert rows(engine, Task, Task.batch_id == batch_id) == []

    # A refused beacon is an attempt too; a refusal before any batch is named still leaves its trace.
    assert "没有约定信标" in await walk.say(ADMIN, f"抽取 批次={batch_id} 信标值=1")
    assert "缺少参数 批次=" in await walk.say(ADMIN, "抽取")
    entries = rows(engine, AuditEntry, AuditEntry.action == "draw.refused")
    assert [(e.subject, e.detail["refusal"]) for e in entries][1:] == [(batch_id, "beacon_not_announced"),
                                                                       ("", "missing_argument")]


def _new_draft(engine, settings) -> str:
    today = bureau_today(settings.bureau.timezone)
    with transaction(engine) as session:
        args = parse_arguments(f"名称=草稿 事项=A01 数量=1 方式=大随机 截止={(today + timedelta(days=30)).isoformat()}",
                               create.NEW_KEYS)
        return create.new_batch(session, settings, "admin", args, today).batch.id


# ----- evidence (art. 14) -------------------------------------------------------------------------------------------


async def test_a_photo_needs_a_chosen_task_and_the_same_photo_is_kept_once(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    task = tasks[0]
    user = USER_OF[team(engine, task.id)[0]]
    shop = b"\xff\xd8 the shop front"
    answer = await walk.photo(user, shop)
    assert "请先告诉我这些照片或文件属于哪项任务" in answer and "取证 任务=" in answer
    assert rows(engine, Evidence) == []

    assert f"都会归入任务 {task.id}（已有 0 份）" in await walk.say(user, f"取证 任务={task.id}")
    answer = await walk.photo(user, shop)
    assert f"已保存，归入任务 {task.id}" in answer and "现有现场记录 1 份" in answer
    answer = await walk.photo(user, shop)
    assert "此前已归入" in answer and "现有现场记录 1 份" in answer
    assert "现有现场记录 2 份" in await walk.photo(user, b"\xff\xd8 the licence on the wall")
    kept = rows(engine, Evidence)
    assert [(e.task_id, e.added_by) for e in kept] == [(task.id, f"wecom:{user}")] * 2
    assert len({e.sha256 for e in kept}) == 2
    assert len(rows(engine, AuditEntry, AuditEntry.action == "evidence.added")) == 2
    assert "stranger" not in {e.added_by for e in kept}
    answer = await walk.photo("stranger", shop)
    assert "没有在本系统中登记角色" in answer and len(rows(engine, Evidence)) == 2
