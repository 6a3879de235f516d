"""Results as art. 14 wants them recorded (issue 19 items 7 and 8): the witness (见证=) is
stored, audited and shown to the approvers; after a category is picked on the result card
the remarks are asked in the private chat (「无」 skips); an omitted 签字= is asked for and
never shown as "未签字：" with nothing after it."""

from __future__ import annotations

import json

from bot.texts import say
from storage.models import AuditEntry, PendingInput, Result
from tests.support.batches import rows, team
from tests.support.chat_tasks import USER_OF, confirmed, drawn, inspected
from tests.support.wecom_bot import APPROVER, Walk


def card_text(card: dict) -> str:
    return json.dumps(card["card"], ensure_ascii=False)


async def test_a_witness_is_stored_audited_and_shown_on_the_approval_card(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    witnessed, plain = tasks
    user = USER_OF[await inspected(engine, witnessed.id)]
    answer = await walk.say(user, f"结果 任务={witnessed.id} 类别=1 签字=否 原因=负责人不在场 见证=「网格员李四」")
    assert "等待审批" in answer and "见证人：网格员李四" in answer
    (result,) = rows(engine, Result)
    assert (result.signed, result.unsigned_reason, result.witness) == (False, "负责人不在场", "网格员李四")
    (entry,) = rows(engine, AuditEntry, AuditEntry.action == "result.submitted")
    assert entry.detail["witness"] == "网格员李四"
    (approval,) = walk.cards(APPROVER, f"ss-apr{result.id}-")
    text = card_text(approval)
    assert "见证人" in text and "网格员李四" in text and "未签字：负责人不在场" in text

    user = USER_OF[await inspected(engine, plain.id)]
    assert "等待审批" in await walk.say(user, f"result task={plain.id} category=1 signed=是")
    other = rows(engine, Result, Result.task_id == plain.id)[0]
    assert other.witness is None
    (approval,) = walk.cards(APPROVER, f"ss-apr{other.id}-")
    assert "见证人" not in card_text(approval) and "已签字" in card_text(approval)


async def test_the_card_asks_for_the_remarks_and_无_skips_them(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    skipped, noted = tasks
    remark = "货架上发现两件过期食品，已当场下架"
    for task, reply, note in ((skipped, "无", ""), (noted, remark, remark)):
        await confirmed(engine, task.id)
        user = USER_OF[team(engine, task.id)[0]]
        assert "检查完成" in await walk.say(user, f"完成 任务={task.id}")
        (card,) = walk.cards(user, f"ss-res{task.id}-")
        answer = await walk.click(user, card, f"result:{task.id}:signed", selections={"category": ["3"]})
        assert f"请回复任务 {task.id} 检查情况的说明" in answer and "「无」" in answer
        assert walk.closed(card["id"]) == "请在对话中补充信息"
        assert rows(engine, Result, Result.task_id == task.id) == []  # nothing submitted before the remarks
        assert "等待审批" in await walk.say(user, reply)
        (result,) = rows(engine, Result, Result.task_id == task.id)
        assert (result.category, result.signed, result.note, result.witness) == (3, True, note, None)
    assert rows(engine, PendingInput) == []


async def test_an_unsigned_card_asks_reason_witness_and_remarks(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    task = tasks[0]
    await confirmed(engine, task.id)
    user = USER_OF[team(engine, task.id)[0]]
    assert "检查完成" in await walk.say(user, f"完成 任务={task.id}")
    (card,) = walk.cards(user, f"ss-res{task.id}-")
    assert "未签字、也未盖章的原因" in await walk.click(user, card, f"result:{task.id}:unsigned",
                                                        selections={"category": ["5"]})
    assert "见证" in await walk.say(user, "负责人外出")
    assert "检查情况的说明" in await walk.say(user, "楼栋长王五")
    assert "等待审批" in await walk.say(user, "责令十日内改正")
    (result,) = rows(engine, Result)
    assert (result.signed, result.unsigned_reason, result.witness, result.note) == (
        False, "负责人外出", "楼栋长王五", "责令十日内改正")


async def test_an_omitted_signature_is_asked_for_not_shown_blank(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    task = tasks[0]
    user = USER_OF[await inspected(engine, task.id)]
    answer = await walk.say(user, f"结果 任务={task.id} 类别=1 说明=未发现问题")
    assert "是否已在检查记录上签字或者盖章" in answer
    assert rows(engine, Result) == []
    assert "请回复「是」或「否」" in await walk.say(user, "也许")  # asked again
    assert "未签字、也未盖章的原因" in await walk.say(user, "否")
    assert "等待审批" in await walk.say(user, "负责人拒绝签字")
    (result,) = rows(engine, Result)
    assert (result.signed, result.unsigned_reason, result.note) == (False, "负责人拒绝签字", "未发现问题")
    (approval,) = walk.cards(APPROVER, f"ss-apr{result.id}-")
    assert "未签字：负责人拒绝签字" in card_text(approval)
    # a refused mistake is said before anything is asked; a task not yet inspected is not asked about
    assert "结果类别「9」无效" in await walk.say(user, f"结果 任务={task.id} 类别=9")
    answer = await walk.say(user, f"结果 任务={tasks[1].id} 类别=1")
    assert "签字或者盖章" not in answer and rows(engine, PendingInput) == []


def test_a_result_with_no_signature_recorded_is_not_shown_as_unsigned_with_a_blank_reason():
    class Old:  # a result stored before the signature was asked for
        category, signed, unsigned_reason, witness = 1, None, None, None
    assert say("cards", "approval_value", name="signed", result=Old(), task=None, names=[], evidence=0) == "未注明"
    Old.signed = False
    shown = say("cards", "approval_value", name="signed", result=Old(), task=None, names=[], evidence=0)
    assert shown == "未签字（未注明原因）" and not shown.endswith("：")
