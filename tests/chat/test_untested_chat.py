"""Chat features that worked but no test walked (issue 19): 追加分层 and 撤销 in the group,
the 牵头= happy path, and the approver fallback — the lead inspector's unit's approvers,
else the lead office's leads, else the admins (art. 20: someone must be asked)."""

from __future__ import annotations

import re

from storage.models import AuditEntry, Batch, FollowUp, Result, Stratum, Task
from tests.support.batches import rows
from tests.support.chat_tasks import USER_OF, drawn, inspected
from tests.support.wecom_bot import ADMIN, APPROVER, LEAD, Walk


async def test_a_stratum_added_and_a_batch_cancelled_in_the_group(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    created = await walk.group(ADMIN, "@双随 新建抽查 名称=分层抽查 事项=A01 数量=2 方式=大随机 截止=2026-12-31")
    batch_id = re.search(r"批次 (\S+)「", created).group(1)
    answer = await walk.group(ADMIN, f"@双随 追加分层 批次={batch_id} 名称=投诉多 风险=complaints 数量=1 事项=A01")
    assert "投诉多" in answer, answer
    assert sorted(s.name for s in rows(engine, Stratum, Stratum.batch_id == batch_id)) == ["main", "投诉多"]
    assert "投诉多" in await walk.group(ADMIN, f"@双随 stratum batch={batch_id} name=投诉多 count=1 items=A01")
    assert len(rows(engine, Stratum, Stratum.batch_id == batch_id)) == 2  # the same name again: refused
    assert "管理员" in await walk.group(APPROVER, f"@双随 追加分层 批次={batch_id} 名称=x 数量=1 事项=A01")

    assert "原因" in await walk.group(ADMIN, f"@双随 撤销 批次={batch_id}")
    assert rows(engine, Batch, Batch.id == batch_id)[0].status == "draft"
    answer = await walk.group(ADMIN, f"@双随 撤销 批次={batch_id} 原因=「计划 调整」")
    assert batch_id in answer and "撤销" in answer, answer
    assert rows(engine, Batch, Batch.id == batch_id)[0].status == "cancelled"
    (entry,) = rows(engine, AuditEntry, AuditEntry.action == "batch.cancelled")
    assert (entry.actor, entry.subject, entry.detail["reason"]) == (f"wecom:{ADMIN}", batch_id, "计划 调整")
    assert "撤销" in await walk.group(ADMIN, f"@双随 追加分层 批次={batch_id} 名称=晚了 数量=1 事项=A01")
    assert len(rows(engine, Stratum, Stratum.batch_id == batch_id)) == 2


async def test_a_batch_led_by_another_office_牵头(start_bot, wecom, engine):
    app = await start_bot({"admins": [ADMIN], "units": {"S-XC": {"leads": [LEAD]}, "U-XY": {"leads": ["stranger"]}}})
    walk = Walk(wecom, engine, app)
    created = await walk.group(ADMIN, "@双随 新建抽查 名称=西城牵头 事项=A01 数量=1 方式=小随机 管辖=S-DC 牵头=S-XC "
                                      "截止=2026-12-31")
    batch_id = re.search(r"批次 (\S+)「", created).group(1)
    assert rows(engine, Batch, Batch.id == batch_id)[0].lead_unit_id == "S-XC"
    assert "公示" in await walk.group(ADMIN, f"@双随 公示方案 批次={batch_id}")
    assert "种子" in await walk.group(ADMIN, f"@双随 抽取 批次={batch_id}")
    (task,) = rows(engine, Task, Task.batch_id == batch_id)
    lead = await inspected(engine, task.id)
    assert "等待审批" in await walk.say(USER_OF[lead], f"结果 任务={task.id} 类别=2 签字=是")
    (result,) = rows(engine, Result)
    # no approver in 东城所: the lead office named by 牵头= decides, not the default one
    assert walk.cards(LEAD, f"ss-apr{result.id}-") and not walk.cards("stranger", "ss-apr")
    assert "已批准" in await walk.say(LEAD, f"批准 任务={task.id}")
    assert rows(engine, Result)[0].deciding_unit == "S-XC"
    assert "区公安分局" in await walk.say(LEAD, f"移送 任务={task.id} 机关=区公安分局")
    assert [f.target for f in rows(engine, FollowUp, FollowUp.kind == "transfer_agency")] == ["区公安分局"]
    answer = await walk.group(ADMIN, "@双随 新建抽查 名称=x 事项=A01 数量=1 方式=大随机 牵头=NOPE 截止=2026-12-31")
    assert "单位「NOPE」不存在" in answer and len(rows(engine, Batch)) == 1


async def test_with_no_approver_and_no_lead_the_admins_are_asked(start_bot, wecom, engine):
    app = await start_bot({"admins": [ADMIN], "units": {}})
    walk = Walk(wecom, engine, app)
    _, tasks = await drawn(app, engine, "数量=1 方式=大随机")
    (task,) = tasks
    lead = await inspected(engine, task.id)
    assert "等待审批" in await walk.say(USER_OF[lead], f"结果 任务={task.id} 类别=1 签字=是")
    (result,) = rows(engine, Result)
    (card,) = walk.cards(ADMIN, f"ss-apr{result.id}-")
    assert "公示" in await walk.click(ADMIN, card, f"approve:{result.id}")
    assert rows(engine, Result)[0].status == "approved"
