"""Staffing that cannot dead-end (issue 18 §2; art. 12, 14) through the real app: 补员 on
today's directory (and why nobody qualifies), 指派 by hand (private, reason sealed, counted
on the public draw page, said on the card), 结束任务 (未检查（原因已记录）, the batch
completes) and 协助 (the specialist told privately, shown in 进度 and on cards) — on
WeCom, DingTalk and DingTalk Stream, then the details on WeCom.

Batches are set up through the service layer (tests/support/batches.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlmodel import Session

from bot.app import SETTINGS, create_app
from bot.batches.progress import progress
from bot.batches.recusal import recuse
from bot.clock import bureau_today
from bot.clock import now as clock_now
from bot.key_rotation import rotate_keys
from bot.public.site import Site
from bot.settings import Settings
from storage.calendar import load_calendar
from storage.db import make_engine, transaction
from storage.importing import import_file
from storage.models import Assignment, AuditEntry, Batch, ConsoleMessage, InspectionObject, Task
from storage.sealing import PREFIX, Sealer, new_key
from tests.support.batch_district import INSPECTORS, seed_district
from tests.support.batches import drawn_batch, rows, team
from tests.support.wecom_bot import (
    ADMIN,
    APPROVER,
    INSPECTOR_IDS,
    LEAD,
    Walk,
    eventually,
)

USER_OF = INSPECTOR_IDS


async def drawn(app, engine, text: str) -> tuple[str, Task]:
    batch_id = await asyncio.to_thread(drawn_batch, engine, app[SETTINGS], text, "补员测试")
    (task,) = rows(engine, Task, Task.batch_id == batch_id)
    return batch_id, task


def _recuse_all_but_one(engine, task_id: int) -> str:
    """A station of four: three recusals use up both replacements and leave one member."""
    today = bureau_today()
    for _ in range(3):
        member = team(engine, task_id)[0]
        with transaction(engine) as session:
            recuse(session, "test", task_id, member, "其他", today, clock_now())
    (last,) = team(engine, task_id)
    return last


async def unstaffed(app, engine, station: str = "S-DC") -> tuple[str, Task, str]:
    """A task in ``station`` left with one member (a second one goes to the other station:
    the same object drawn again would find three of its four inspectors conflicted)."""
    batch_id, task = await drawn(app, engine, f"事项=A01 数量=1 方式=小随机 管辖={station}")
    last = await asyncio.to_thread(_recuse_all_but_one, engine, task.id)
    assert rows(engine, Task, Task.id == task.id)[0].status == "unstaffed"
    return batch_id, task, last


def public(engine, settings, path: str) -> str:
    with Session(engine) as session:
        found = Site(session, settings).get(path)
        assert found is not None, path
        return found.body.decode()


def outsider(engine, task_id: int) -> str:
    """An inspector never on the task (of the other station)."""
    on_task = {a.inspector_id for a in rows(engine, Assignment, Assignment.task_id == task_id)}
    return next(i for i in sorted(USER_OF) if i not in on_task)


def name(inspector_id: str) -> str:
    return f"检查员{int(inspector_id[1:])}"


def station(engine, task: Task) -> str:
    return rows(engine, InspectionObject, InspectionObject.id == task.object_id)[0].unit_id


def audits(engine, action: str) -> list[AuditEntry]:
    return rows(engine, AuditEntry, AuditEntry.action == action)


# ----- on every platform --------------------------------------------------------------------------------------------


async def test_an_unstaffed_task_restaffed_assigned_by_hand_and_another_closed(walk, engine):
    settings = walk.app[SETTINGS]
    batch_id, task, last = await unstaffed(walk.app, engine)

    # 补员: nobody left in the station — it stays unstaffed and says why
    answer = await walk.say(LEAD, f"补员 任务={task.id}")
    assert "仍缺 1 名" in answer and "本单位（" in answer and "已回避或有利害关系 3 名" in answer, answer
    assert "指派 任务=" in answer and rows(engine, Task, Task.id == task.id)[0].status == "unstaffed"
    (tried,) = audits(engine, "task.restaffed")
    assert tried.detail["chosen"] == [] and tried.detail["shortfall"]["excluded"] == 3

    # 指派: private, admin only, a reason; the newcomer's card says it was by hand
    hand_to = outsider(engine, task.id)
    assert "只能在与我的私聊中使用" in await walk.group(ADMIN, f"@双随 指派 任务={task.id} 人员={hand_to} 原因=x")
    assert "需要管理员" in await walk.say(LEAD, f"指派 任务={task.id} 人员={hand_to} 原因=本所人员均已回避")
    answer = await walk.say(ADMIN, f"指派 任务={task.id} 人员={hand_to} 原因=本所人员均已回避")
    assert f"已将 {name(hand_to)} 人工指派到任务" in answer and "满员" in answer, answer
    hand = rows(engine, Assignment, Assignment.task_id == task.id, Assignment.origin == "hand")
    assert [a.inspector_id for a in hand] == [hand_to] and hand[0].hand_reason == "本所人员均已回避"
    (card,) = walk.cards(USER_OF[hand_to], f"ss-t{task.id}-a{hand[0].id}")
    assert "人工指派" in str(card) and walk.interactive(card)
    assert rows(engine, Task, Task.id == task.id)[0].status == "drawn"
    assert any(f"经人工指派加入：{name(hand_to)}" in t for t in walk.texts(USER_OF[last]))
    assert "此前已被人工指派" in await walk.say(ADMIN, f"指派 任务={task.id} 人员={hand_to} 原因=本所人员均已回避")
    (assigned,) = audits(engine, "task.assigned")
    assert "本所人员均已回避" not in str(assigned.detail)  # the reason is sealed in the audit log too
    assert "1 项任务因随机抽取后无符合条件的检查人员，由管理员人工指派" in public(
        engine, settings, f"batches/{batch_id}/draw.html")

    # 结束任务 on a second batch's unstaffed task: not inspected, the batch completes
    other_id, other, other_last = await unstaffed(walk.app, engine, "S-XC")
    answer = await walk.say(LEAD, f"结束任务 任务={other.id} 原因=对象已注销无法检查")
    assert "未检查（原因已记录）" in answer, answer
    closed = rows(engine, Task, Task.id == other.id)[0]
    assert closed.status == "not_inspected" and closed.closed_reason == "对象已注销无法检查"
    assert rows(engine, Batch, Batch.id == other_id)[0].status == "completed"
    assert any("已由牵头科室结束" in t for t in walk.texts(USER_OF[other_last]))
    assert "此前已结束" in await walk.say(LEAD, f"结束任务 任务={other.id} 原因=对象已注销无法检查")
    page = public(engine, settings, f"batches/{other_id}/results.html")
    assert "未检查（原因已记录）" in page and "对象已注销" not in page
    assert "无，全部检查人员均按公开算法抽取" in public(engine, settings, f"batches/{other_id}/draw.html")


# ----- details, on WeCom ----------------------------------------------------------------------------------------------


async def test_restaff_picks_from_the_directory_as_it_stands(bot, wecom, engine, tmp_path):
    walk = Walk(wecom, engine, bot)
    _, task, last = await unstaffed(bot, engine)
    assert "人员齐全" not in await walk.say(ADMIN, f"补员 任务={task.id}")
    path = tmp_path / "more.csv"  # a new inspector joins the station
    path.write_text(INSPECTORS + f"I09,检查员9,{station(engine, task)},C9,2030-12-31,,true\n", encoding="utf-8")
    assert (await asyncio.to_thread(import_file, engine, "inspectors", path, actor="test")).ok
    answer = await walk.say(LEAD, f"补员 任务={task.id}")
    assert "从当前名录补充检查人员：检查员9" in answer and "满员" in answer, answer
    assert team(engine, task.id) == [last, "I09"]
    assert [a.origin for a in rows(engine, Assignment, Assignment.inspector_id == "I09")] == ["restaff"]
    assert rows(engine, Task, Task.id == task.id)[0].status == "drawn"
    before = len(audits(engine, "task.restaffed"))
    assert "人员齐全，无需补员" in await walk.say(LEAD, f"补员 任务={task.id}")
    assert len(audits(engine, "task.restaffed")) == before  # a repeat changes nothing
    assert any("经补员加入：检查员9" in t for t in walk.texts(USER_OF[last]))


async def test_who_may_act_is_checked_first_and_hand_assignment_is_checked(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, task, last = await unstaffed(bot, engine)
    for command in ("补员", "结束任务 原因=x", "协助 人员=I05"):
        assert "需要" in await walk.say(APPROVER, f"{command.split()[0]} 颜色=红")  # roles before arguments
        assert "需要" in await walk.say(USER_OF[last], f"{command.replace(' ', f' 任务={task.id} ', 1)}")
    other = outsider(engine, task.id)
    recused = rows(engine, Assignment, Assignment.task_id == task.id, Assignment.status == "recused")[0].inspector_id
    assert "不是有效的编号" in await walk.say(ADMIN, "指派 任务=x 人员=I05 原因=y")
    assert "须说明原因" in await walk.say(ADMIN, f"指派 任务={task.id} 人员={other}")
    assert "名录中没有「I99」" in await walk.say(ADMIN, f"指派 任务={task.id} 人员=I99 原因=y")
    assert "已回避任务" in await walk.say(ADMIN, f"指派 任务={task.id} 人员={recused} 原因=y")
    assert "已是任务" in await walk.say(ADMIN, f"指派 任务={task.id} 人员={last} 原因=y")
    with transaction(engine) as session:  # the outsider's certificate expired
        session.execute(text(f"UPDATE inspectors SET certificate_expiry = '2020-01-01' WHERE id = '{other}'"))
    assert "执法证" in await walk.say(ADMIN, f"指派 任务={task.id} 人员={other} 原因=y")
    assert not rows(engine, Assignment, Assignment.origin == "hand")


async def test_a_specialist_assists_a_task_whose_team_lacks_the_speciality(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    batch_id, task = await drawn(bot, engine, "事项=A02 数量=1 方式=小随机")
    holders = [i for i in team(engine, task.id) if i in ("I01", "I05")]
    assert holders and not rows(engine, Task, Task.id == task.id)[0].needs_expert  # pass 1 took the 食品 holder
    # the holder recuses: the replacement holds no 食品
    assert "替补" in await walk.say(USER_OF[holders[0]], f"回避 任务={task.id} 原因=亲属关系")
    assert rows(engine, Task, Task.id == task.id)[0].needs_expert  # recomputed after the recusal
    newcomer = rows(engine, Assignment, Assignment.task_id == task.id, Assignment.origin == "replacement")[0]
    (card,) = walk.cards(USER_OF[newcomer.inspector_id], f"ss-t{task.id}-a{newcomer.id}")
    assert "需要专业人员协助" in str(card) and "待牵头科室指派" in str(card)
    assert f"任务 {task.id}（待指派" in await walk.say(LEAD, f"进度 批次={batch_id}")

    helper = "I05" if holders[0] == "I01" else "I01"
    plain = next(i for i in ("I02", "I04", "I06", "I07") if i not in team(engine, task.id))  # holds no 食品
    assert "不具备" in await walk.say(LEAD, f"协助 任务={task.id} 人员={plain}")
    assert "需要" in await walk.say(USER_OF["I02"], f"协助 任务={task.id} 人员={helper}")
    answer = await walk.say(LEAD, f"协助 任务={task.id} 人员={helper}")
    assert f"已指派 检查员{int(helper[1:])} 协助任务 {task.id}" in answer and "食品" in answer, answer
    assert rows(engine, Task, Task.id == task.id)[0].expert_id == helper
    assert helper not in team(engine, task.id)  # not a team member
    assert any("您被指派协助检查任务" in t for t in walk.texts(USER_OF[helper]))
    for member in team(engine, task.id):
        assert any(f"已指派 检查员{int(helper[1:])} 协助检查" in t for t in walk.texts(USER_OF[member]))
    assert "此前已被指派协助" in await walk.say(LEAD, f"协助 任务={task.id} 人员={helper}")
    assert len(audits(engine, "task.expert_assigned")) == 1
    assert f"已指派 检查员{int(helper[1:])} 协助" in await walk.say(LEAD, f"进度 批次={batch_id}")


async def test_a_task_with_a_full_team_needs_no_hand_and_an_inspected_one_cannot_be_closed(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, task = await drawn(bot, engine, "事项=A01 数量=1 方式=小随机")
    stranger = outsider(engine, task.id)  # the draw is random: never someone already on the team
    assert "人员齐全" in await walk.say(ADMIN, f"指派 任务={task.id} 人员={stranger} 原因=y")
    assert "人员齐全，无需补员" in await walk.say(LEAD, f"补员 任务={task.id}")
    assert "不需要指派专业人员" in await walk.say(LEAD, f"协助 任务={task.id} 人员={stranger}")
    assert "须说明原因" in await walk.say(LEAD, f"结束任务 任务={task.id}")
    with transaction(engine) as session:
        session.execute(text(f"UPDATE tasks SET status = 'inspected' WHERE id = {task.id}"))
    assert "已检查完成" in await walk.say(LEAD, f"结束任务 任务={task.id} 原因=y")


async def test_a_lead_of_another_office_may_not_restaff_or_close_and_is_audited(start_bot, wecom, engine):
    app = await start_bot({"admins": [ADMIN], "units": {"U-XY": {"leads": [LEAD]}, "S-DC": {"leads": ["stranger"]}}})
    walk = Walk(wecom, engine, app)
    _, task, _ = await unstaffed(app, engine)
    for command in (f"补员 任务={task.id}", f"结束任务 任务={task.id} 原因=x", f"协助 任务={task.id} 人员=I05"):
        assert "牵头科室负责人或管理员" in await walk.say("stranger", command)
    refused = rows(engine, AuditEntry, AuditEntry.action == "refused", AuditEntry.actor == "wecom:stranger")
    assert [e.detail["reason"] for e in refused] == ["not_lead_office"] * 3
    assert rows(engine, Task, Task.id == task.id)[0].status == "unstaffed"


async def test_hand_and_closing_reasons_are_sealed_at_rest_and_rotate(bot, wecom, engine, db_url, sealing_key):
    walk = Walk(wecom, engine, bot)
    _, task, _ = await unstaffed(bot, engine)
    _, other, _ = await unstaffed(bot, engine, "S-XC")
    assert "人工指派" in await walk.say(ADMIN, f"指派 任务={task.id} 人员={outsider(engine, task.id)} 原因=甲理由")
    assert "未检查" in await walk.say(LEAD, f"结束任务 任务={other.id} 原因=乙理由")
    with Session(engine) as session:
        raw = session.execute(text("SELECT hand_reason FROM assignments WHERE origin = 'hand'")).scalar_one()
        closed = session.execute(text(f"SELECT closed_reason FROM tasks WHERE id = {other.id}")).scalar_one()
    assert raw.startswith(PREFIX) and closed.startswith(PREFIX) and "理由" not in raw + closed
    fresh = new_key()
    rotating = make_engine(db_url, sealer=Sealer([fresh, sealing_key]))
    try:
        done = rotate_keys(rotating)
    finally:
        rotating.dispose()
    assert done["hand_assignments"] == 1 and done["closed_tasks"] == 1
    rotated = make_engine(db_url, sealer=Sealer([fresh]))
    try:
        with Session(rotated) as session:
            assert session.get(Task, other.id).closed_reason == "乙理由"
            assert session.scalars(select(Assignment.hand_reason).where(Assignment.origin == "hand")).one() == "甲理由"
    finally:
        rotated.dispose()


# ----- on the console -------------------------------------------------------------------------------------------------

CONSOLE_TOKEN = "staffing"


@pytest.fixture
async def console(engine, tmp_path, aiohttp_client):
    seed_district(engine, tmp_path)
    settings = Settings(console={"enabled": True}, roles={"admins": ["console:admin"]},
                        security={"keys": [new_key()]}, bureau={"default_lead": "U-XY"})
    client = await aiohttp_client(create_app(settings, engine, ticker=False, console_token=CONSOLE_TOKEN))
    assert (await client.get(f"/console/?token={CONSOLE_TOKEN}")).status == 200
    return client


def console_messages(engine, conversation: str) -> list[ConsoleMessage]:
    with Session(engine) as session:
        return list(session.scalars(select(ConsoleMessage).where(ConsoleMessage.conversation == conversation,
                                                                 ConsoleMessage.author == "bot")
                                    .order_by(ConsoleMessage.id)))


async def console_say(client, engine, user: str, said: str, chat: str = "private") -> str:
    conversation = "group" if chat == "group" else user
    before = len(console_messages(engine, conversation))
    response = await client.post("/console/api/send", json={"user": user, "chat": chat, "text": said})
    assert response.status == 200
    # the answer is a text; a card update of the same person (a card greyed out) may come before it
    texts = await eventually(lambda: [m.payload["text"] for m in console_messages(engine, conversation)[before:]
                                      if m.kind == "text" and m.payload.get("text")])
    return "\n".join(texts)


async def test_restaff_assign_and_close_on_the_console(console, engine):
    created = await console_say(console, engine, "admin", "@双随 新建抽查 名称=控制台补员 事项=A01 数量=1 方式=小随机 "
                                "截止=2026-12-31", chat="group")
    batch_id = created.split("批次 ", 1)[1].split("「", 1)[0]
    await console_say(console, engine, "admin", f"公示方案 批次={batch_id}", chat="group")
    await console_say(console, engine, "admin", f"抽取 批次={batch_id}", chat="group")
    (task,) = rows(engine, Task, Task.batch_id == batch_id)
    for _ in range(3):
        leaving = team(engine, task.id)[0]
        assert "回避" in await console_say(console, engine, leaving, f"回避 任务={task.id} 原因=其他")
    told = await eventually(lambda: [m for m in console_messages(engine, "group") if "补员 任务=" in str(m.payload)])
    assert f"结束任务 任务={task.id}" in str(told[0].payload)  # the unstaffed notice says what can be done
    assert "仍缺 1 名" in await console_say(console, engine, "admin", f"补员 任务={task.id}")
    hand_to = outsider(engine, task.id)
    assert "人工指派" in await console_say(console, engine, "admin", f"指派 任务={task.id} 人员={hand_to} 原因=无人")
    cards = await eventually(lambda: [m for m in console_messages(engine, hand_to) if m.kind == "card"])
    assert "人工指派" in str(cards[-1].payload)
    assert "未检查" in await console_say(console, engine, "admin", f"结束任务 任务={task.id} 原因=对象已注销")
    assert rows(engine, Batch, Batch.id == batch_id)[0].status == "completed"
    assert "未检查（原因已记录） 1" in await console_say(console, engine, "admin", f"进度 批次={batch_id}")


async def test_a_hand_assignment_brings_the_missing_speciality_when_someone_qualified_holds_it(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    _, task = await drawn(bot, engine, "事项=A02 数量=1 方式=小随机")
    members = team(engine, task.id)
    holder = next(i for i in members if i in ("I01", "I05"))  # the station's one 食品 holder, taken by pass 1
    keep = next(i for i in members if i != holder)

    def recusals():
        with transaction(engine) as session:
            recuse(session, "test", task.id, holder, "其他", bureau_today(), clock_now())
        for _ in range(2):
            leaving = next(i for i in team(engine, task.id) if i != keep)
            with transaction(engine) as session:
                recuse(session, "test", task.id, leaving, "其他", bureau_today(), clock_now())
    await asyncio.to_thread(recusals)
    found = rows(engine, Task, Task.id == task.id)[0]
    assert team(engine, task.id) == [keep] and found.status == "unstaffed" and found.needs_expert
    plain = next(i for i in sorted(USER_OF) if i not in ("I01", "I03", "I05", "I08")
                 and i not in {a.inspector_id for a in rows(engine, Assignment, Assignment.task_id == task.id)})
    answer = await walk.say(LEAD, f"补员 任务={task.id}")
    assert "仍缺 1 名" in answer and "缺少 食品 专长" in answer and f"协助 任务={task.id}" in answer, answer
    answer = await walk.say(ADMIN, f"指派 任务={task.id} 人员={plain} 原因=无人")
    assert "需要具备 食品 专长" in answer, answer
    other_holder = "I05" if holder == "I01" else "I01"
    assert "人工指派" in await walk.say(ADMIN, f"指派 任务={task.id} 人员={other_holder} 原因=无人")
    assert not rows(engine, Task, Task.id == task.id)[0].needs_expert  # recomputed after the assignment


async def test_a_closed_task_is_never_overdue_and_is_counted_as_not_inspected(bot, wecom, engine):
    walk = Walk(wecom, engine, bot)
    batch_id, task, _ = await unstaffed(bot, engine)
    assert "未检查" in await walk.say(LEAD, f"结束任务 任务={task.id} 原因=对象已注销")
    with Session(engine) as session:
        due = session.get(Batch, batch_id).due
        (found,) = progress(session, load_calendar(session), due + timedelta(days=1), batch_id)
    assert found.overdue_inspections == 0 and found.states["not_inspected"] == 1
