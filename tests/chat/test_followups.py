"""后续处置 (issue 18 §1; art. 18, 19, 23) through the real app and the fake WeCom: the
hand-over card to the receiving unit's leads when a result needing action is published,
处置 by card and by command (roles, the listing rule, 立案 with its case number asked in
the private chat, idempotent, audited), the closed follow-up shown in 进度 and on the
public object page, the batch's hand-over list, and the follow-up deadline on the
reminder ladder."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

from openpyxl import load_workbook
from sqlalchemy import select
from sqlmodel import Session

from bot.app import SETTINGS
from bot.clock import bureau_today
from bot.public.disclosure import object_page
from bot.public.site import Site
from bot.reminders.deadlines import wanted
from storage.calendar import load_calendar
from storage.models import AuditEntry, Batch, ConsoleMessage, FollowUp, InspectionObject, Task
from tests.support.batches import rows
from tests.support.chat_tasks import USER_OF, drawn, inspected, refusals, state
from tests.support.wecom_bot import ADMIN, APPROVER, LEAD, Walk

DC_LEAD = "stranger"  # leads the receiving unit S-DC (the objects' jurisdiction)
XC_LEAD = USER_OF["I05"]  # leads another unit: an inspector of S-XC, on no task of S-DC
ROLES = {"admins": [ADMIN], "units": {"S-DC": {"approvers": [APPROVER], "leads": [DC_LEAD],
                                               "accountability": [ADMIN]},
                                      "S-XC": {"approvers": [APPROVER], "leads": [XC_LEAD]},
                                      "U-XY": {"leads": [LEAD]}}}


async def published(walk: Walk, engine, task: Task, category: int) -> None:
    lead = await inspected(engine, task.id)
    assert "等待审批" in await walk.say(USER_OF[lead], f"结果 任务={task.id} 类别={category} 签字=是")
    assert "已批准" in await walk.say(APPROVER, f"批准 任务={task.id}")


def object_page_text(app, engine, task: Task) -> str:
    with Session(engine) as session:
        return Site(session, app[SETTINGS]).get(f"objects/{object_page(task.object_id)}.html").body.decode()


async def test_a_category_3_follow_up_is_carded_refused_instead_of_listing_and_closed_as_listed(
        start_bot, wecom, engine):
    app = await start_bot(ROLES)
    walk = Walk(wecom, engine, app)
    batch_id, (task, other) = await drawn(app, engine, "数量=2 方式=小随机 管辖=S-DC")
    await published(walk, engine, task, 3)
    (follow_up,) = rows(engine, FollowUp, FollowUp.task_id == task.id)
    assert (follow_up.target, follow_up.abnormal_list, follow_up.status) == ("S-DC", True, "open")

    # the receiving unit's lead gets a private card: object, batch, category, the rule, outcomes
    (card,) = walk.cards(DC_LEAD, f"ss-fu{follow_up.id}-")
    assert walk.interactive(card)
    shown = str(card["card"])
    assert "不得以责令改正" in shown and batch_id in shown and "公示信息隐瞒真实情况弄虚作假" in shown
    keys = [b["key"] for b in card["card"]["button_list"]]
    assert f"dispose:{task.id}:listed" in keys and f"dispose:{task.id}:rectify" not in keys
    assert not walk.cards(XC_LEAD, "ss-fu")  # only the receiving unit's
    assert "后续处置 1 件（已处置 0 件）" in await walk.say(LEAD, f"进度 批次={batch_id}")

    # roles before arguments; another unit's lead is refused and audited; the rule of art. 18
    assert "负责人" in await walk.say(USER_OF["I06"], f"处置 任务={task.id} 结论=立案")  # an inspector: no such role
    assert "不在其列" in await walk.say(APPROVER, f"处置 任务={task.id}")  # S-DC has leads: its approvers do not
    before = state(engine)
    answer = await walk.say(XC_LEAD, f"处置 任务={task.id} 结论=列入异常名录")
    assert "不在其列" in answer and "此次尝试已记录" in answer
    assert [(e.subject, e.detail["reason"]) for e in refusals(engine, XC_LEAD)] == [("处置", "not_receiving_unit")]
    assert "不得以责令整改代替列入" in await walk.say(DC_LEAD, f"处置 任务={task.id} 结论=责令整改")
    assert "无效" in await walk.say(DC_LEAD, f"处置 任务={task.id} 结论=罚款")
    assert "案号只随" in await walk.say(DC_LEAD, f"处置 任务={task.id} 结论=列入异常名录 案号=X1")
    assert rows(engine, FollowUp, FollowUp.status == "done") == []
    assert state(engine)["follow_ups"] == before["follow_ups"]

    # closed by the card's button; the card greys out; a repeat says so and changes nothing
    answer = await walk.click(DC_LEAD, card, f"dispose:{task.id}:listed")
    assert "已处置：列入异常名录" in answer
    (closed,) = rows(engine, FollowUp, FollowUp.task_id == task.id)
    assert (closed.status, closed.outcome, closed.outcome_on, closed.closed_by) == (
        "done", "listed", bureau_today(), f"wecom:{DC_LEAD}")
    assert walk.closed(card["id"]).startswith("已处置：列入异常名录")
    before = state(engine)
    answer = await walk.say(DC_LEAD, f"处置 任务={task.id} 结论=立案 说明=再来一次")
    assert "已经办结" in answer and "列入异常名录" in answer
    assert state(engine) == before
    audited = rows(engine, AuditEntry, AuditEntry.action == "followup.closed")
    assert [(e.subject, e.detail["outcome"]) for e in audited] == [(str(task.id), "listed")]
    assert "后续处置 1 件（已处置 1 件）" in await walk.say(LEAD, f"进度 批次={batch_id}")

    # the public page: the listing and its day, never remarks nor people
    page = object_page_text(app, engine, task)
    assert "列入经营异常名录" in page and bureau_today().isoformat() in page
    assert DC_LEAD not in page


async def test_case_filed_by_card_asks_the_case_number_and_the_lead_office_may_close(start_bot, wecom,
                                                                                     engine):
    app = await start_bot(ROLES)
    walk = Walk(wecom, engine, app)
    _, (task, other) = await drawn(app, engine, "数量=2 方式=小随机 管辖=S-DC")
    await published(walk, engine, task, 8)
    (follow_up,) = rows(engine, FollowUp, FollowUp.task_id == task.id)
    assert follow_up.abnormal_list is False
    (card,) = walk.cards(DC_LEAD, f"ss-fu{follow_up.id}-")
    assert f"dispose:{task.id}:rectify" in [b["key"] for b in card["card"]["button_list"]]
    assert "案号" in await walk.click(DC_LEAD, card, f"dispose:{task.id}:case")
    assert rows(engine, FollowUp, FollowUp.status == "done") == []
    assert "已处置：立案（案号 区市监立〔2026〕7号）" in await walk.say(DC_LEAD, "区市监立〔2026〕7号")
    (closed,) = rows(engine, FollowUp, FollowUp.task_id == task.id)
    assert (closed.outcome, closed.case_no) == ("case", "区市监立〔2026〕7号")
    # the summaries say so too (the batch is still in progress)
    assert "后续处置 1 件（已处置 1 件）" in await asyncio.to_thread(summary_text, app, engine)
    page = object_page_text(app, engine, task)
    assert "立案查处" in page and "区市监立" not in page  # the outcome and day, not the case number

    # the batch's lead office (U-XY) may close one too, by command, with a date and remarks
    await published(walk, engine, other, 5)
    yesterday = (bureau_today() - timedelta(days=1)).isoformat()
    answer = await walk.say(LEAD, f"处置 任务={other.id} 结论=责令整改 说明=「已复查，整改到位」 日期={yesterday}")
    assert "已处置：责令整改" in answer
    (done,) = rows(engine, FollowUp, FollowUp.task_id == other.id)
    expected = ("rectify", "已复查,整改到位", yesterday)  # full-width punctuation normalised (SPEC §5)
    assert (done.outcome, done.outcome_note, done.outcome_on.isoformat()) == expected
    assert "整改到位" not in object_page_text(app, engine, other)  # remarks are never public
    tomorrow = (bureau_today() + timedelta(days=1)).isoformat()
    assert "已经办结" in await walk.say(LEAD, f"处置 任务={other.id} 结论=责令整改 日期={tomorrow}")


def summary_text(app, engine) -> str:
    from bot.clock import now as clock_now
    from bot.reports.summary import send_summaries
    from storage.db import transaction
    from storage.models import OutboxMessage

    with transaction(engine) as session:
        send_summaries(session, app[SETTINGS], "daily", clock_now())
    with Session(engine) as session:
        found = session.scalars(select(OutboxMessage).where(OutboxMessage.idempotency_key.like("summary:%"))).all()
    return "\n".join(m.payload["message"].get("text", "") for m in found)


async def test_a_correction_that_calls_for_a_follow_up_hands_it_over_with_its_card(start_bot, wecom, engine):
    app = await start_bot(ROLES)
    walk = Walk(wecom, engine, app)
    _, (task, _) = await drawn(app, engine, "数量=2 方式=小随机 管辖=S-DC")
    await published(walk, engine, task, 1)
    assert not rows(engine, FollowUp, FollowUp.task_id == task.id)
    assert "更正" in await walk.say(LEAD, f"更正 任务={task.id} 类别=4 原因=住所核查无法联系")
    (follow_up,) = rows(engine, FollowUp, FollowUp.task_id == task.id)
    assert follow_up.abnormal_list and walk.cards(DC_LEAD, f"ss-fu{follow_up.id}-")
    # corrected again, to no problem found: the hand-over is withdrawn, its card greyed out, nothing owed
    assert "更正" in await walk.say(LEAD, f"更正 任务={task.id} 类别=1 原因=经复核已联系上")
    (withdrawn,) = rows(engine, FollowUp, FollowUp.task_id == task.id)
    assert withdrawn.status == "superseded"
    (card,) = walk.cards(DC_LEAD, f"ss-fu{follow_up.id}-")
    assert walk.closed(card["id"]).startswith("已撤回")
    assert "已撤回" in await walk.say(DC_LEAD, f"处置 任务={task.id} 结论=列入异常名录")
    assert rows(engine, AuditEntry, AuditEntry.action == "followup.superseded")


async def test_transfer_outcome_names_the_transfer_on_record(start_bot, wecom, engine):
    app = await start_bot(ROLES)
    walk = Walk(wecom, engine, app)
    _, (task, _) = await drawn(app, engine, "数量=2 方式=小随机 管辖=S-DC")
    await published(walk, engine, task, 8)
    assert "已记录" in await walk.say(LEAD, f"移送 任务={task.id} 机关=「区公安分局」 司法=是")
    answer = await walk.say(ADMIN, f"处置 任务={task.id} 结论=移送")
    assert "已处置：移送" in answer and "区公安分局" in answer
    assert len(rows(engine, FollowUp, FollowUp.task_id == task.id)) == 2  # the transfer record stays


async def test_the_batch_hand_over_list_goes_once_to_each_receiving_unit(start_bot, wecom, engine):
    app = await start_bot(ROLES)
    walk = Walk(wecom, engine, app)
    batch_id, (task, other) = await drawn(app, engine, "数量=2 方式=小随机 管辖=S-DC")
    await published(walk, engine, task, 2)
    assert not [t for t in walk.texts(DC_LEAD) if "汇总移交" in t]  # not before the batch's last result
    await published(walk, engine, other, 1)
    with Session(engine) as session:
        assert session.get(Batch, batch_id).status == "completed"
        name = session.get(InspectionObject, task.object_id).name
    (listing,) = [t for t in walk.texts(DC_LEAD) if "汇总移交" in t]
    assert batch_id in listing and name in listing and f"任务 {task.id}" in listing
    assert f"任务 {other.id}" not in listing  # category 1 needs no follow-up
    assert "应列入经营异常名录" in listing and "处置期限" in listing
    assert not [t for t in walk.texts(XC_LEAD) if "汇总移交" in t]
    # and the same list as a spreadsheet, sent as a file after the text
    assert [d["msgtype"] for d in wecom.delivered_to(DC_LEAD)].count("file") == 1
    (sheet,) = [content for content, name, _ in wecom.media.values() if name.endswith(".xlsx")]
    assert batch_id in next(name for _, name, _ in wecom.media.values() if name.endswith(".xlsx"))
    cells = [[c for c in row] for row in load_workbook(io.BytesIO(sheet)).active.iter_rows(values_only=True)]
    assert cells[0][:3] == ["任务", "统一社会信用代码/编号", "检查对象"]
    assert [row[0] for row in cells[1:]] == [str(task.id)] and cells[1][2] == name
    assert cells[1][4] == "是" and cells[1][6] == "待处置"


async def test_a_follow_up_is_on_the_reminder_ladder_until_closed(start_bot, wecom, engine):
    app = await start_bot(ROLES)
    walk = Walk(wecom, engine, app)
    _, (task, _) = await drawn(app, engine, "数量=2 方式=小随机 管辖=S-DC")
    await published(walk, engine, task, 4)
    (follow_up,) = rows(engine, FollowUp, FollowUp.task_id == task.id)
    settings = app[SETTINGS]

    def deadlines() -> dict:
        with Session(engine) as session:
            calendar = load_calendar(session)
            return {k: v for k, v in wanted(session, settings, calendar).items() if k[0] == "followup"}, calendar

    found, calendar = await asyncio.to_thread(deadlines)
    (key,) = found
    assert key == ("followup", f"followup:{follow_up.id}")
    due = calendar.working_days_after(bureau_today(), 20)
    assert found[key]["due"] == due.day and found[key]["unit_id"] == "S-DC"
    assert found[key]["owed_by"] == ["receivers:S-DC"]
    await walk.say(DC_LEAD, f"处置 任务={task.id} 结论=列入异常名录")
    found, _ = await asyncio.to_thread(deadlines)
    assert found == {}


async def test_the_follow_up_on_each_platform_with_the_approvers_standing_in_for_missing_leads(walk, engine):
    """WeCom, DingTalk over HTTP and over Stream: S-DC has no leads configured, so its
    approvers get the card and may close the follow-up; the list comes as a file too."""
    app = walk.app
    batch_id, (task, other) = await drawn(app, engine, "数量=2 方式=小随机 管辖=S-DC")
    await published(walk, engine, task, 3)
    (follow_up,) = rows(engine, FollowUp, FollowUp.task_id == task.id)
    (card,) = walk.cards(APPROVER, f"ss-fu{follow_up.id}-")
    assert walk.interactive(card)
    assert "已处置：列入异常名录" in await walk.click(APPROVER, card, f"dispose:{task.id}:listed")
    assert walk.closed(card["id"]).startswith("已处置")
    assert "已经办结" in await walk.say(APPROVER, f"处置 任务={task.id} 结论=立案")
    await published(walk, engine, other, 5)
    (listing,) = [t for t in walk.texts(APPROVER) if "汇总移交" in t]
    assert f"任务 {task.id}" in listing and "已处置：列入异常名录" in listing and f"任务 {other.id}" in listing
    if walk.platform == "console":  # the console keeps the file as a message of its own, to download
        files = rows(engine, ConsoleMessage, ConsoleMessage.conversation == APPROVER, ConsoleMessage.kind == "file")
    else:
        files = [d for d in walk.fake.delivered_to(APPROVER)
                 if d.get("msgtype") == "file" or d.get("msgKey") == "sampleFile"]
    assert len(files) == 1
    assert "（已处置 1 件）" in await walk.say(LEAD, f"进度 批次={batch_id}")
