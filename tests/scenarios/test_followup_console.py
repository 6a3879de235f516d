"""后续处置 on the local console (issue 18 §1): the hand-over card to the receiving unit,
closed by a click, and the batch's list as text and as an XLSX file to download."""

from __future__ import annotations

import io

from openpyxl import load_workbook
from sqlmodel import Session, select

from bot.batches.confirmation import confirm
from bot.batches.inspection import mark_inspected, team_of
from bot.clock import bureau_today
from bot.clock import now as clock_now
from storage.db import transaction
from storage.models import FollowUp, Task
from tests.support.console_bot import console_messages as messages
from tests.support.console_bot import console_say as say
from tests.support.wecom_bot import eventually


async def test_a_follow_up_closed_by_a_click_and_the_list_as_a_file(console, engine):
    created = await say(console, engine, "admin", "@双随 新建抽查 名称=处置演示 事项=A01 数量=1 方式=小随机 管辖=S-DC "
                        "截止=2027-06-30", chat="group")
    batch = created.split("批次 ", 1)[1].split("「", 1)[0]
    await say(console, engine, "admin", f"公示方案 批次={batch}", chat="group")
    await say(console, engine, "admin", f"抽取 批次={batch}", chat="group")
    with transaction(engine) as session:
        task = session.exec(select(Task).where(Task.batch_id == batch)).one()
        team = [a.inspector_id for a in team_of(session, task.id)]
        for inspector in team:
            confirm(session, "t", task.id, inspector, clock_now())
        mark_inspected(session, "t", task.id, team[0], bureau_today(), bureau_today(), clock_now())
        task_id = task.id
    assert "等待审批" in await say(console, engine, team[0], f"结果 任务={task_id} 类别=2 签字=是")
    await say(console, engine, "approver", f"批准 任务={task_id}")
    # S-DC has no leads here: its approver is told, and may close it
    cards = await eventually(lambda: [m for m in messages(engine, "approver") if m.kind == "card"
                                      and m.payload["card_id"].startswith("ss-fu")])
    card = cards[0].payload
    listed = next(b for b in card["buttons"] if b["value"] == f"{task_id}:listed")
    response = await console.post("/console/api/click", json={
        "user": "approver", "card_id": card["card_id"], "action": "dispose", "value": listed["value"]})
    assert response.status == 200
    update = await eventually(lambda: [m for m in messages(engine, "approver") if m.kind == "card_update"
                                       and m.payload["card_id"] == card["card_id"]])
    assert update[0].payload["closed"].startswith("已处置：列入异常名录")
    with Session(engine) as session:
        assert session.exec(select(FollowUp.outcome).where(FollowUp.task_id == task_id)).one() == "listed"
    # the batch completed with its one result's publication: the list as it stood, and the file
    texts = [m.payload["text"] for m in messages(engine, "approver") if m.kind == "text"]
    assert any("汇总移交" in t and "应列入经营异常名录" in t and "处置期限" in t for t in texts)
    (sheet,) = [m.payload for m in messages(engine, "approver") if m.kind == "file"]
    assert sheet["name"].endswith(".xlsx") and batch in sheet["name"]
    download = await console.get(f"/console/api/blob/{sheet['sha256']}")
    assert download.status == 200 and "attachment" in download.headers.get("Content-Disposition", "")
    rows = list(load_workbook(io.BytesIO(await download.read())).active.iter_rows(values_only=True))
    assert rows[1][0] == str(task_id) and rows[1][4:] == ("是", rows[1][5], "待处置")
    page = await (await console.get("/console/")).text()
    assert 'message.kind === "file"' in page
