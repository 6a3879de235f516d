"""A district with something to disclose, for the public-page tests: an annual plan with
an adjustment; a batch drawn with a recusal, two results published, one submitted but
not yet approved (its remarks must never show), one returned; a second batch published
but not drawn; a third still a draft (nothing public)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlmodel import select

from bot.batches import create, draw, publish
from bot.batches.recusal import recuse
from bot.batches.results import Entry, approve, return_result, submit
from bot.chat.identity import identify
from bot.plans import import_plans
from bot.roles import Actor
from bot.rules.arguments import parse_arguments
from storage.db import transaction
from storage.models import Assignment, Conflict, Inspector, Task
from tests.support.results_district import LATER, LATER_NOW, NOW, SETTINGS, TODAY, inspected, team

PLANS = ("year,office,name,items,ratio,frequency,scope,start,end\n"
         "2026,U-XY,企业公示信息年度抽查,A01,10,1,,2026-03-01,2026-12-31\n")
UNPUBLISHED_NOTE = "内部备注-尚未审批-不得公开"
RETURN_REASON = "退回原因-内部-不得公开"
RECUSAL_REASON = "与法定代表人系亲属-回避理由不得公开"


@dataclass(frozen=True)
class Disclosed:
    drawn: str  # the drawn batch
    published_only: str  # published, not drawn
    draft: str
    published_tasks: list[int]
    pending_task: int


def disclose(engine, tmp_path) -> Disclosed:
    plans = tmp_path / "plans.csv"
    plans.write_text(PLANS, encoding="utf-8")
    assert import_plans(engine, plans, actor="test", reason=None, today=date(2026, 2, 1)).ok
    plans.write_text(PLANS.replace(",10,1,", ",12.5,1,"), encoding="utf-8")
    assert import_plans(engine, plans, actor="test", reason="上级部署提高抽查比例", today=date(2026, 6, 1)).ok
    with transaction(engine) as session:
        for inspector in session.exec(select(Inspector)).all():  # platform accounts: never public
            inspector.wecom_userid, inspector.dingtalk_userid = f"wx-{inspector.id}", f"dt-{inspector.id}"
            session.add(inspector)
    drawn = _batch(engine, "名称=食品安全专项抽查 计划=1 事项=A01 数量=4 方式=交叉随机 截止=2026-12-31", draw_it=True)
    published_only = _batch(engine, "名称=第二批抽查 事项=A01 数量=2 方式=大随机 截止=2026-12-31",
                            beacon="信标=「2026年12月1日上证指数收盘价」")
    draft = _batch(engine, "名称=草稿批次 事项=A01 数量=2 方式=大随机 截止=2026-12-31", publish_it=False)
    with transaction(engine) as session:
        tasks = list(session.exec(select(Task).where(Task.batch_id == drawn).order_by(Task.position)).all())
        first = session.exec(select(Assignment).where(Assignment.task_id == tasks[0].id)
                             .order_by(Assignment.position)).first()
        recuse(session, f"wecom:{first.inspector_id}", tasks[0].id, first.inspector_id, RECUSAL_REASON, TODAY, NOW)
    published = []
    for n, task in enumerate(tasks[:3]):
        lead = inspected(engine, task.id)
        with transaction(engine) as session:
            entry = Entry(category=(1, 5, 2)[n], signed=True, note=UNPUBLISHED_NOTE if n == 2 else "已当场责令改正")
            result = submit(session, f"wecom:{lead}", task.id, lead, entry, LATER_NOW)
            admin = identify(session, SETTINGS, Actor("wecom", "admin1"))
            if n < 2:
                approve(session, admin, result.id, LATER_NOW)
                published.append(task.id)
    with transaction(engine) as session:  # the fourth: returned once, then left submitted
        lead = team(engine, tasks[3].id)[0]
    lead = inspected(engine, tasks[3].id)
    with transaction(engine) as session:
        result = submit(session, f"wecom:{lead}", tasks[3].id, lead, Entry(category=8, signed=True), LATER_NOW)
        return_result(session, identify(session, SETTINGS, Actor("wecom", "admin1")), result.id, RETURN_REASON,
                      LATER_NOW)
    with transaction(engine) as session:
        assert session.exec(select(Conflict)).first() is not None  # the recusal's declaration
    return Disclosed(drawn, published_only, draft, published, tasks[2].id)


def _batch(engine, arguments: str, *, draw_it: bool = False, publish_it: bool = True, beacon: str = "") -> str:
    with transaction(engine) as session:
        batch_id = create.new_batch(session, SETTINGS, "admin1", parse_arguments(arguments, create.NEW_KEYS),
                                    TODAY).batch.id
    if publish_it:
        with transaction(engine) as session:
            publish.publish(session, SETTINGS, "admin1", parse_arguments(
                f"批次={batch_id} {beacon}".strip(), publish.PUBLISH_KEYS), NOW)
    if draw_it:
        with transaction(engine) as session:
            draw.draw(session, SETTINGS, "admin1", parse_arguments(f"批次={batch_id}", draw.DRAW_KEYS), NOW)
    return batch_id


__all__ = ["LATER", "Disclosed", "disclose"]
