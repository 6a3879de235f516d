"""Who is talking (SPEC §1): roles from configuration and the inspector directory."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, bindparam, func
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from bot.roles import Actor, named
from bot.settings import Settings
from storage.models import Inspector

ADMIN, SUPERVISOR, LEAD, APPROVER, ACCOUNTABILITY, INSPECTOR = (
    "admin", "supervisor", "lead", "approver", "accountability", "inspector")
ROLES = (ADMIN, SUPERVISOR, LEAD, APPROVER, ACCOUNTABILITY, INSPECTOR)
_PLATFORM_ID = {"wecom": Inspector.wecom_userid, "dingtalk": Inspector.dingtalk_userid}


@dataclass(frozen=True)
class Identity:
    """An actor with every role they hold; unit roles list their units."""

    actor: Actor
    roles: frozenset[str] = frozenset()
    units: dict[str, frozenset[str]] = field(default_factory=dict)  # role → unit ids
    inspector_id: str | None = None

    def has(self, role: str) -> bool:
        return role in self.roles or (role != ADMIN and ADMIN in self.roles)


def identify(session: Session, settings: Settings, actor: Actor) -> Identity:
    """Look ``actor`` up in ``[roles]`` and, by their platform id, in the inspector directory."""
    roles: set[str] = set()
    units: dict[str, set[str]] = {}
    if named(settings.roles.admins, actor):
        roles.add(ADMIN)
    if named(settings.roles.supervisors, actor):
        roles.add(SUPERVISOR)
    for unit_id, unit in settings.roles.units.items():
        for role, people in ((LEAD, unit.leads), (APPROVER, unit.approvers), (ACCOUNTABILITY, unit.accountability)):
            if named(people, actor):
                roles.add(role)
                units.setdefault(role, set()).add(unit_id)
    inspector_id = _inspector_of(session, actor)
    if inspector_id:
        roles.add(INSPECTOR)
    return Identity(actor, frozenset(roles), {r: frozenset(u) for r, u in units.items()}, inspector_id)


def _inspector_lookup(match: ColumnElement[bool]) -> SelectOfScalar[str]:
    return select(Inspector.id).where(match, col(Inspector.active), col(Inspector.listed)).limit(1)


# One statement per platform, built once: every delivery asks. WeCom user ids are
# case-insensitive (an expression index serves ``lower``); the console and the CLI name
# inspectors by id.
_INSPECTOR_OF = {platform: _inspector_lookup(func.lower(column) == bindparam("user"))
                 for platform, column in _PLATFORM_ID.items()}
_INSPECTOR_BY_ID = _inspector_lookup(col(Inspector.id) == bindparam("user"))


def _inspector_of(session: Session, actor: Actor) -> str | None:
    if actor.platform in _INSPECTOR_OF:
        lookup, user = _INSPECTOR_OF[actor.platform], actor.user_id.lower()
    else:
        lookup, user = _INSPECTOR_BY_ID, actor.user_id
    return session.execute(lookup, {"user": user}).scalar()
