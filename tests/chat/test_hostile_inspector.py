"""An inspector who turns the chat against the records (issue 17, items 1 and 2), through
the real app and the fake WeCom: a recusal reason typed to look sealed must not poison
the team's rows, and a recusal comes too late once the inspection is done."""

from __future__ import annotations

import csv
import io

from sqlmodel import Session, select

from bot.app import SETTINGS
from bot.key_rotation import rotate_keys
from bot.public.disclosure import object_page
from bot.public.site import Site
from storage.db import make_engine
from storage.models import Assignment, AuditEntry, Conflict, Result, Task
from storage.sealing import PREFIX, Sealer, new_key
from tests.support.batches import rows, team
from tests.support.chat_tasks import drawn, inspected, state
from tests.support.wecom_bot import APPROVER, INSPECTOR_IDS, Walk

USER_OF = INSPECTOR_IDS


async def test_a_reason_typed_to_look_sealed_poisons_nothing(bot, wecom, engine, db_url, sealing_key):
    """``回避 任务=N 原因=sealed:x`` (and ``sealed:…`` replied to the reason prompt): the
    partner's 确认, the result's approval, ``keys rotate`` and the public feed all work."""
    walk = Walk(wecom, engine, bot)
    batch_id, tasks = await drawn(bot, engine)
    first, second = tasks
    typed = {first.id: "sealed:x", second.id: "sealed:gAAAAABo-looks-like-a-token"}
    leaving = team(engine, first.id)[0]
    assert "替补" in await walk.say(USER_OF[leaving], f"回避 任务={first.id} 原因={typed[first.id]}")
    other = team(engine, second.id)[0]
    assert "请直接回复回避原因" in await walk.say(USER_OF[other], f"回避 任务={second.id}")
    assert "替补" in await walk.say(USER_OF[other], typed[second.id])

    with Session(engine) as session:  # stored sealed like any declaration, read back as typed
        recused = session.exec(select(Assignment).where(Assignment.status == "recused")).all()
        assert {a.task_id: a.recusal_reason for a in recused} == typed
        assert sorted(c.reason for c in session.exec(select(Conflict)).all()) == sorted(typed.values())
    for task in tasks:  # the partner and the replacement confirm by chat
        for inspector in team(engine, task.id):
            answer = await walk.say(USER_OF[inspector], f"确认 任务={task.id}")
            assert "已记录" in answer or "任务已接受" in answer, answer
    assert {t.status for t in rows(engine, Task, Task.batch_id == batch_id)} == {"accepted"}
    for task in tasks:  # results entered and approved by chat
        lead = await inspected(engine, task.id)
        assert "等待审批" in await walk.say(USER_OF[lead], f"结果 任务={task.id} 类别=1 签字=是")
        assert "已批准" in await walk.say(APPROVER, f"批准 任务={task.id}")
    assert {r.status for r in rows(engine, Result)} == {"approved"}

    fresh = new_key()
    rotating = make_engine(db_url, sealer=Sealer([fresh, sealing_key]))
    try:
        done = rotate_keys(rotating)  # what ``shuangsui keys rotate`` runs
    finally:
        rotating.dispose()
    assert done["recusals"] == 2 and done["conflicts"] == 2
    rotated = make_engine(db_url, sealer=Sealer([fresh]))
    try:
        with Session(rotated) as session:
            reasons = {a.task_id: a.recusal_reason
                       for a in session.exec(select(Assignment).where(Assignment.status == "recused"))}
            assert reasons == typed
            audited = session.exec(select(AuditEntry).where(AuditEntry.action == "task.recused")).all()
            assert all(str(e.detail["reason"]).startswith(PREFIX) for e in audited)
            site = Site(session, bot[SETTINGS])
            feed = list(csv.reader(io.StringIO(site.get("results.csv").body.decode("utf-8-sig"))))
            assert sorted(r[0] for r in feed[1:]) == sorted(t.object_id for t in tasks)
            assert site.get(f"batches/{batch_id}/results.html").body
            assert site.get(f"objects/{object_page(first.object_id)}.html").body
    finally:
        rotated.dispose()


async def test_a_recusal_after_the_inspection_is_refused_by_command_and_by_card(bot, wecom, engine):
    """Issue 17 item 2: once inspected, 回避 (with a reason, without one, or the card's button)
    is refused with what to do instead; nothing changes."""
    walk = Walk(wecom, engine, bot)
    _, tasks = await drawn(bot, engine)
    task = tasks[0]
    await inspected(engine, task.id)
    member = team(engine, task.id)[1]
    before = state(engine)
    for said in (f"回避 任务={task.id} 原因=检查后才发现亲属关系", f"回避 任务={task.id}"):
        answer = await walk.say(USER_OF[member], said)
        assert "不能再申请回避" in answer and "更正" in answer, answer
    (card,) = walk.cards(USER_OF[member], f"ss-t{task.id}-")
    answer = await walk.click(USER_OF[member], card, f"recuse:{task.id}")
    assert "不能再申请回避" in answer, answer
    assert "没有「检查后才发现亲属关系」这个命令" in await walk.say(USER_OF[member], "检查后才发现亲属关系")
    after = state(engine)
    assert after["assignments"] == before["assignments"] and after["tasks"] == before["tasks"]
    assert not rows(engine, Conflict)
