"""The whole life of a batch where the rules' loops close (issue 18), as one walk of the
district's people on a platform: recusals that leave the task unstaffed, 补员 that finds
nobody and says why, a hand assignment (指派), a further recusal, the directory changing
(an inspector back in post) and 补员 that now staffs the task, a specialist assisting
(协助, art. 12), a category-3 result entered late whose approval deadline is capped at the
20th working day after the inspection (art. 20) and the lead office told when it passes
that line unpublished, the approval, and the follow-up closed as listed in the
abnormal-operations list (art. 18) — visible in 进度 and on the public object page.

Only the clock of the handlers and of the reminder sweep is moved (the time the late
result is typed, the sweeps of later days); everything else goes through the platform."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.app import SETTINGS
from bot.chat import pipeline as pipeline_module
from bot.clock import bureau_today
from bot.public.site import Site
from bot.reminders.sweep import sweep
from storage import audit
from storage.calendar import load_calendar
from storage.importing import import_file
from storage.models import Assignment, Batch, Deadline, FollowUp, InspectionObject, Task
from tests.support.batches import rows, team
from tests.support.wecom_bot import ADMIN, APPROVER, INSPECTOR_IDS, LEAD

TZ = ZoneInfo("Asia/Shanghai")
USER_OF = INSPECTOR_IDS
# 计量 (metrology): an item only 西城所's I07 and I08 are qualified for; I04 of 东城所 is on leave.
ITEMS = "code,name,legal_basis,specialty,method\nA04,计量器具检查,《计量法》第二十二条,计量,实地\n"
ON_LEAVE = "id,name,unit,certificate_no,certificate_expiry,specialties,active\n{rows}"


def _inspector(n: int, unit: str, specialties: str, active: bool) -> str:
    return f"I{n:02d},检查员{n},{unit},C{n},2030-12-31,{specialties},{'true' if active else 'false'}\n"


def task_of(engine, task_id: int) -> Task:
    (task,) = rows(engine, Task, Task.id == task_id)
    return task


async def _import(engine, work: Path, kind: str, text: str) -> None:
    path = work / f"lifecycle-{kind}.csv"
    path.write_text(text, encoding="utf-8")
    outcome = await asyncio.to_thread(import_file, engine, kind, path, actor="admin", partial=True)
    assert outcome.ok, outcome.problems


def at(day: date, hour: int = 11) -> datetime:
    return datetime.combine(day, time(hour), TZ).astimezone(UTC)


async def whole_life(walk, engine, work: Path, monkeypatch) -> None:
    settings = walk.app[SETTINGS]
    today = bureau_today(settings.bureau.timezone)
    await _import(engine, work, "items", ITEMS)
    await _import(engine, work, "inspectors", ON_LEAVE.format(rows=_inspector(4, "S-DC", "", False)
                                                                + _inspector(7, "S-XC", "计量", True)
                                                                + _inspector(8, "S-XC", "特种设备;计量", True)))

    # the admin creates, publishes and draws one task in 东城所 (小随机: its own inspectors)
    due = (today + timedelta(days=90)).isoformat()
    created = await walk.group(ADMIN, "@双随 新建抽查 名称=全程抽查 事项=A01,A04 数量=1 方式=小随机 管辖=S-DC "
                                      f"截止={due}")
    batch_id = re.search(r"批次 (\S+)「", created).group(1)
    assert "公示" in await walk.group(ADMIN, f"@双随 公示方案 批次={batch_id}")
    assert "种子" in await walk.group(ADMIN, f"@双随 抽取 批次={batch_id}")
    (task,) = rows(engine, Task, Task.batch_id == batch_id)
    assert task.needs_expert  # nobody in 东城所 holds 计量 (art. 12)
    assert set(team(engine, task.id)) <= {"I01", "I02", "I03"}  # I04 on leave

    # two recusals: the first is replaced from the station, the second leaves the task short
    first = team(engine, task.id)[0]
    assert "替补" in await walk.say(USER_OF[first], f"回避 任务={task.id} 原因=亲属在该企业任职")
    second = team(engine, task.id)[0]
    await walk.say(USER_OF[second], f"回避 任务={task.id} 原因=曾在该企业兼职")
    assert task_of(engine, task.id).status == "unstaffed"
    (remaining,) = team(engine, task.id)

    # 补员 on the directory as it stands: nobody qualifies, and it says why and what to do
    answer = await walk.say(LEAD, f"补员 任务={task.id}")
    assert "仍缺 1 名" in answer and "指派 任务=" in answer, answer
    assert task_of(engine, task.id).status == "unstaffed"

    # 指派 by hand (admin, private): a qualified 西城所 inspector — one holding the missing 计量,
    # as long as someone qualified does; the reason is recorded
    answer = await walk.say(ADMIN, f"指派 任务={task.id} 人员=I05 原因=本所在岗人员均已回避")
    assert "计量" in answer and task_of(engine, task.id).status == "unstaffed", answer
    answer = await walk.say(ADMIN, f"指派 任务={task.id} 人员=I07 原因=本所在岗人员均已回避")
    assert "人工指派" in answer, answer
    (hand,) = rows(engine, Assignment, Assignment.task_id == task.id, Assignment.origin == "hand")
    assert hand.inspector_id == "I07" and task_of(engine, task.id).status == "drawn"
    assert not task_of(engine, task.id).needs_expert  # the team now holds 计量
    (card,) = walk.cards(USER_OF["I07"], f"ss-t{task.id}-a{hand.id}")
    assert "人工指派" in str(card)

    # the hand-assigned inspector finds a conflict: the station is out of people again
    await walk.say(USER_OF["I07"], f"回避 任务={task.id} 原因=曾为该企业提供咨询")
    assert task_of(engine, task.id).status == "unstaffed"
    # I04 is back in post (the directory changes); 补员 now staffs the task by DRAW.md §6
    await _import(engine, work, "inspectors", ON_LEAVE.format(rows=_inspector(4, "S-DC", "", True)))
    await walk.say(LEAD, f"补员 任务={task.id}")
    assert set(team(engine, task.id)) == {remaining, "I04"} and task_of(engine, task.id).status == "drawn"
    assert task_of(engine, task.id).needs_expert  # recomputed: still nobody with 计量

    # the lead office names the specialist assisting (art. 12): told privately, not a member
    answer = await walk.say(LEAD, f"协助 任务={task.id} 人员=I08")
    assert "已指派 检查员8 协助任务" in answer, answer
    assert any("您被指派协助检查任务" in t for t in walk.texts(USER_OF["I08"]))
    assert "I08" not in team(engine, task.id)
    assert "已指派 检查员8 协助" in await walk.say(LEAD, f"进度 批次={batch_id}")

    # the team confirms and inspects today
    for member in team(engine, task.id):
        assert "无利害关系" in await walk.say(USER_OF[member], f"确认 任务={task.id}")
    lead = team(engine, task.id)[0]
    assert "检查完成" in await walk.say(USER_OF[lead], f"完成 任务={task.id}")

    # the result is typed 19 working days later (late): its approval is due on the 20th (art. 20),
    # not approval_days after it
    with Session(engine) as session:
        calendar = load_calendar(session)
    line = calendar.working_days_after(today, 20).day
    late = calendar.working_days_after(today, 19).day
    assert calendar.working_days_after(late, settings.reminders.approval_days).day > line
    monkeypatch.setattr(pipeline_module, "clock_now", lambda: at(late, 10))
    answer = await walk.say(USER_OF[lead], f"结果 任务={task.id} 类别=3 说明=「年报从业人数与实际不符」 签字=是")
    monkeypatch.undo()
    assert "等待审批" in answer, answer
    await asyncio.to_thread(sweep, engine, settings, at(late))
    (approval,) = rows(engine, Deadline, Deadline.kind == "approval", Deadline.task_id == task.id)
    assert approval.due == line

    # the day after the line, still unpublished: the lead office is told (once)
    after = calendar.working_days_after(line, 1).day
    await asyncio.to_thread(sweep, engine, settings, at(after))
    await asyncio.to_thread(sweep, engine, settings, at(after, 15))
    await walk.quiet()
    told = [t for t in walk.texts(LEAD) if "检查后已满 20 个工作日" in t]
    assert len(told) == 1 and f"任务 {task.id}" in told[0], told

    # approved and published; the follow-up (category 3: listing required) is closed as listed
    assert "已批准" in await walk.say(APPROVER, f"批准 任务={task.id}")
    (follow_up,) = rows(engine, FollowUp, FollowUp.task_id == task.id, FollowUp.kind == "handover")
    assert follow_up.abnormal_list
    (card,) = walk.cards(APPROVER, f"ss-fu{follow_up.id}-")  # 东城所 has no leads: its approvers stand in
    assert "已处置：列入异常名录" in await walk.click(APPROVER, card, f"dispose:{task.id}:listed")
    assert "已处置 1 件" in await walk.say(LEAD, f"进度 批次={batch_id}")

    # the end: the batch complete, the public page shows the listing, the records agree
    with Session(engine) as session:
        assert session.get_one(Batch, batch_id).status == "completed"
        obj = session.get_one(InspectionObject, task.object_id)
        page = Site(session, settings).get(f"objects/{obj.page_key}.html")
        assert page is not None and "列入经营异常名录" in page.body.decode()
        assert "曾为该企业提供咨询" not in page.body.decode() and "本所在岗人员均已回避" not in page.body.decode()
        audit.verify(session)
    assert not walk.lost()
