"""The whole workflow (SPEC §2) as one walk of the district's people on a platform, with
what each step must leave behind; a scenario of its own, and the logs' test's material."""

from __future__ import annotations

import re

from sqlalchemy import func, or_, select
from sqlmodel import Session

from bot.chat.identity import ADMIN as ADMIN_ROLE  # noqa: F401  (roles named in the scenario)
from storage import audit
from storage.models import (
    Assignment,
    AuditEntry,
    Batch,
    Evidence,
    FollowUp,
    Inspector,
    OutboxMessage,
    Result,
    Task,
)
from tests.support.batches import rows
from tests.support.wecom_bot import ADMIN, APPROVER, INSPECTOR_IDS, LEAD

USER_OF = INSPECTOR_IDS
INSPECTOR_OF = {user: inspector for inspector, user in INSPECTOR_IDS.items()}


async def whole_workflow(walk, engine) -> None:
    """The whole workflow on ``walk``'s platform, asserting each step (tests/scenarios/test_workflow.py),
    and again with its logs read (tests/operations/test_logs.py)."""
    platform = walk.platform

    # 新建抽查, 公示方案, 抽取 — by the admin, in the group, through the AI bot
    command = "@双随 新建抽查 名称=食品经营抽查 事项=A01,A02 数量=3 方式=交叉随机 截止=2026-12-31"
    created = await walk.group(ADMIN, command)
    batch_id = re.search(r"批次 (\S+)「", created).group(1)
    assert "公示" in await walk.group(ADMIN, f"@双随 公示方案 批次={batch_id}")
    assert "种子" in await walk.group(ADMIN, f"@双随 抽取 批次={batch_id}")
    (announcement,) = walk.group_messages()
    assert batch_id in announcement

    # a person with no role may not draw: refused politely, and audited
    refusal = await walk.say("stranger", f"抽取 批次={batch_id}")
    assert "管理员" in refusal
    assert rows(engine, AuditEntry, AuditEntry.action == "refused", AuditEntry.actor == f"{platform}:stranger")

    tasks = rows(engine, Task, Task.batch_id == batch_id)
    assert len(tasks) == 3
    team = {t.id: [a for a in rows(engine, Assignment, Assignment.task_id == t.id)] for t in tasks}
    for task in tasks:
        for a in team[task.id]:
            (card,) = walk.cards(USER_OF[a.inspector_id], f"ss-t{task.id}-a{a.id}")
            assert walk.interactive(card)

    # one recusal on the first task: reason by the second card, replacement drawn at once
    first = tasks[0]
    leaving = team[first.id][0]
    leaving_user = USER_OF[leaving.inspector_id]
    (task_card,) = walk.cards(leaving_user, f"ss-t{first.id}-a{leaving.id}")
    await walk.click(leaving_user, task_card, f"recuse:{first.id}")
    (reason_card,) = walk.cards(leaving_user, f"ss-rr{first.id}-")
    answer = await walk.click(leaving_user, reason_card, f"recuse_reason:{first.id}:kin")
    assert "回避" in answer and "替补" in answer
    (replacement,) = rows(engine, Assignment, Assignment.task_id == first.id, Assignment.origin == "replacement")
    assert walk.cards(USER_OF[replacement.inspector_id], f"ss-t{first.id}-a{replacement.id}")
    partner = team[first.id][1]
    assert any("已申请回避" in t for t in walk.texts(USER_OF[partner.inspector_id]))
    assert any("已申请回避" in t for t in walk.texts(LEAD))
    assert any("已申请回避" in m for m in walk.group_messages())
    assert walk.closed(task_card["id"]).startswith("已申请回避")  # the task card greyed out

    # everyone else confirms by card; one click is replayed by the platform and counts once
    replayed = False
    for task in tasks:
        for a in rows(engine, Assignment, Assignment.task_id == task.id, Assignment.status == "drawn"):
            user = USER_OF[a.inspector_id]
            (card,) = walk.cards(user, f"ss-t{task.id}-a{a.id}")
            await walk.click(user, card, f"confirm:{task.id}")
            if task is tasks[1] and not replayed:  # the platform delivers the same click twice more
                replayed = True
                await walk.replay_last_click(times=2)
                assert sum("无利害关系" in t for t in walk.texts(user)) == 1
    assert {t.status for t in rows(engine, Task, Task.batch_id == batch_id)} == {"accepted"}

    # an inspector may not approve results
    inspector_user = USER_OF[team[tasks[1].id][0].inspector_id]
    assert "审批人" in await walk.say(inspector_user, f"批准 任务={tasks[1].id}")

    # inspections: 完成, a photo, and the result — by card for two tasks, by command for one
    for n, task in enumerate(tasks):
        lead = min((a for a in rows(engine, Assignment, Assignment.task_id == task.id) if a.status != "recused"),
                   key=lambda a: a.position)
        user = USER_OF[lead.inspector_id]
        assert "检查完成" in await walk.say(user, f"完成 任务={task.id}")
        assert "现有现场记录 1 份" in await walk.photo(user, b"\xff\xd8 photo of the shop front " + bytes([n]))
        (result_card,) = walk.cards(user, f"ss-res{task.id}-1")
        if n < 2:
            answer = await walk.click(user, result_card, f"result:{task.id}:signed",
                                      selections={"category": ["1" if n == 0 else "2"]})
            assert "请回复任务" in answer and "「无」" in answer  # the remarks, asked in the private chat
            answer = await walk.say(user, "无" if n == 0 else "门店已停业整顿")
            assert "等待审批" in answer
        else:
            answer = await walk.say(user, f"结果 任务={task.id} 类别=5 说明=「标签不规范，已当场责令改正」 签字=是")
            assert "等待审批" in answer
    assert {t.status for t in rows(engine, Task, Task.batch_id == batch_id)} == {"submitted"}

    # the approver: approves two by card, returns the third with a reason, approves it after the fix
    for task in tasks[:2]:
        result = rows(engine, Result, Result.task_id == task.id)[-1]
        (card,) = walk.cards(APPROVER, f"ss-apr{result.id}-")
        assert "公示" in await walk.click(APPROVER, card, f"approve:{result.id}")
    third = tasks[2]
    result = rows(engine, Result, Result.task_id == third.id)[-1]
    (card,) = walk.cards(APPROVER, f"ss-apr{result.id}-")
    await walk.click(APPROVER, card, f"return:{result.id}")
    assert "已退回" in await walk.say(APPROVER, "请补充整改期限")
    lead_user = USER_OF[min((a for a in rows(engine, Assignment, Assignment.task_id == third.id)
                             if a.status != "recused"), key=lambda a: a.position).inspector_id]
    assert any("请补充整改期限" in t for t in walk.texts(lead_user))
    await walk.say(lead_user, f"结果 任务={third.id} 类别=5 说明=「已责令十日内改正」 签字=否 原因=负责人不在场")
    assert "已批准" in await walk.say(APPROVER, f"批准 任务={third.id}")

    # the end: every result published, the batch complete, the records agree
    with Session(engine) as session:
        batch = session.get(Batch, batch_id)
        assert batch.status == "completed"
        statuses = [r.status for r in session.scalars(select(Result).order_by(Result.id))]
        assert statuses == ["approved", "approved", "returned", "approved"]
        assert session.execute(select(func.count()).select_from(Evidence)).scalar_one() == 3
        follow_ups = session.scalars(select(FollowUp)).all()
        assert sorted((f.abnormal_list, f.target) for f in follow_ups)[0][0] is False
        assert any(f.abnormal_list for f in follow_ups)  # category 2: listing required (art. 18)
        audit.verify(session)
        actions = set(session.scalars(select(AuditEntry.action)))
        assert {"batch.drawn", "task.recused", "task.confirmed", "task.inspected", "evidence.added",
                "result.submitted", "result.returned", "result.published", "batch.completed"} <= actions
        recused = session.get(Assignment, leaving.id)
        assert recused.status == "recused" and session.get(Inspector, recused.inspector_id)
        assert not session.scalars(select(OutboxMessage).where(or_(OutboxMessage.status == "failed"))).all()
    assert not walk.lost()
    # the lead office records a transfer to the judiciary (art. 18, 23)
    answer = await walk.say(LEAD, f"移送 任务={tasks[1].id} 机关=「区公安分局」 司法=是 说明=涉嫌伪造证照")
    assert "区公安分局" in answer
    (transfer,) = rows(engine, FollowUp, FollowUp.kind == "transfer_judiciary")
    assert (transfer.task_id, transfer.target) == (tasks[1].id, "区公安分局")
    progress = await walk.say(ADMIN, f"进度 批次={batch_id}")
    assert "已公示 3" in progress
    assert "一致" in await walk.say(ADMIN, f"核验 批次={batch_id}")
