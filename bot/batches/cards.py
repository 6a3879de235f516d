"""The cards of the workflow, built from the neutral card type: the task card (无利害关系 /
申请回避), the recusal-reason card, the result card (eight categories, art. 20) and the
approval card (批准 / 退回). Every button also exists as a private command (SPEC §5)."""

from __future__ import annotations

import hashlib

from bot.outbound import Button, Card, Choice
from bot.texts import say
from storage.models import Assignment, Batch, InspectionObject, Inspector, Item, Result, Task

CATEGORIES = range(1, 9)
RECUSAL_REASONS = ("kin", "work", "other")  # 亲属关系 / 曾任职或有经济往来 / 其他


def for_recipient(prefix: str, user: str) -> str:
    """A card id unique per recipient (WeCom's task_id charset; user ids may not fit it)."""
    return f"{prefix}-{hashlib.sha256(user.encode()).hexdigest()[:10]}"


def task_card(task: Task, mine: Assignment, team: list[Assignment], batch: Batch, obj: InspectionObject,
              items: list[Item], inspectors: dict[str, Inspector]) -> Card:
    """Object, address, items with legal basis, partners, deadline; 无利害关系 / 申请回避."""
    partners = [inspectors[a.inspector_id].name for a in team
                if a.inspector_id != mine.inspector_id and a.status != "recused"]
    values = dict(task=task, batch=batch, obj=obj, items=items, partners=partners, lead=mine.position == min(
        a.position for a in team if a.status != "recused" or a.id == mine.id), by_hand=mine.origin == "hand",
        expert=inspectors[task.expert_id].name if task.expert_id in inspectors else None)
    return Card(
        card_id=f"ss-t{task.id}-a{mine.id}",
        title=say("cards", "task_title", **values),
        body=say("cards", "task_body", **values),
        fields=[(say("cards", "task_field", name=name), say("cards", "task_value", name=name, **values))
                for name in ("object", "address", "items", "role", "partners", "due")],
        buttons=[Button("confirm", say("cards", "confirm_button"), str(task.id)),
                 Button("recuse", say("cards", "recuse_button"), str(task.id), style="danger")],
    )


def recusal_reason_card(task: Task, mine: Assignment, obj: InspectionObject) -> Card:
    return Card(
        card_id=f"ss-rr{task.id}-a{mine.id}",
        title=say("cards", "reason_title", obj=obj),
        body=say("cards", "reason_body", task=task),
        buttons=[Button("recuse_reason", say("cards", "reason_label", reason=r), f"{task.id}:{r}",
                        style="secondary") for r in RECUSAL_REASONS],
    )


def result_card(task: Task, obj: InspectionObject, evidence: int, attempt: int) -> Card:
    """Category 1–8 and the legal representative's signature (art. 14, 20)."""
    return Card(
        card_id=f"ss-res{task.id}-{attempt}",
        title=say("cards", "result_title", obj=obj),
        body=say("cards", "result_body", task=task, evidence=evidence),
        choice=Choice("category", say("cards", "category_question"),
                      [(str(c), say("cards", "category", code=c)) for c in CATEGORIES]),
        buttons=[Button("result", say("cards", "submit_signed"), f"{task.id}:signed"),
                 Button("result", say("cards", "submit_unsigned"), f"{task.id}:unsigned", style="secondary")],
    )


def approval_card(result: Result, task: Task, obj: InspectionObject, names: list[str], evidence: int,
                  user: str) -> Card:
    return Card(
        card_id=for_recipient(f"ss-apr{result.id}", user),
        title=say("cards", "approval_title", obj=obj),
        body=say("cards", "approval_body", result=result, task=task),
        fields=[(say("cards", "approval_field", name=name),
                 say("cards", "approval_value", name=name, result=result, task=task, names=names, evidence=evidence))
                for name in ("category", "inspected", "inspectors", "signed", "witness", "evidence")
                if name != "witness" or result.witness],  # 见证 (art. 14), where there was one
        buttons=[Button("approve", say("cards", "approve_button"), str(result.id)),
                 Button("return", say("cards", "return_button"), str(result.id), style="danger")],
    )
