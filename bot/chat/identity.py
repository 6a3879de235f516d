"""Who is talking (SPEC §1): roles from configuration and the inspector directory.

A person may have an account on each platform; the inspector directory links them (its
``wecom_userid`` and ``dingtalk_userid`` are one person's), so whichever account someone
uses they are the same person: a ``[roles]`` entry naming either account of a listed
inspector gives the role on both, and "is this person on the team" compares persons
(inspector ids), never platform ids (细则第十四条: who inspected does not decide on it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Row, Select, bindparam, func, union
from sqlalchemy import select as select_rows
from sqlmodel import Session, col

from bot.roles import Actor, entries, is_bare, named
from bot.settings import Settings
from storage.models import Inspector

ADMIN, SUPERVISOR, LEAD, APPROVER, ACCOUNTABILITY, INSPECTOR = (
    "admin", "supervisor", "lead", "approver", "accountability", "inspector")
ROLES = (ADMIN, SUPERVISOR, LEAD, APPROVER, ACCOUNTABILITY, INSPECTOR)
WECOM, DINGTALK = "wecom", "dingtalk"
_PLATFORM_ID = {WECOM: Inspector.wecom_userid, DINGTALK: Inspector.dingtalk_userid}


@dataclass(frozen=True)
class Identity:
    """An actor with every role they hold; unit roles list their units."""

    actor: Actor
    roles: frozenset[str] = frozenset()
    units: dict[str, frozenset[str]] = field(default_factory=dict)  # role → unit ids
    inspector_id: str | None = None  # the active, listed inspector acting (the inspector role)
    #: Every inspector record this actor is, whatever its state (delisted, inactive): by the
    #: account they use, and through a bare ``[roles]`` entry naming them (the same id on
    #: every platform). Used to refuse, never to grant.
    persons: frozenset[str] = frozenset()

    def is_one_of(self, inspector_ids: set[str] | frozenset[str]) -> bool:
        """Whether this actor is one of these inspectors (persons, not platform ids)."""
        mine = self.persons | ({self.inspector_id} if self.inspector_id else set())
        return bool(mine & set(inspector_ids))

    def has(self, role: str) -> bool:
        return role in self.roles or (role != ADMIN and ADMIN in self.roles)


def identify(session: Session, settings: Settings, actor: Actor) -> Identity:
    """Look ``actor`` up in the inspector directory and, by every account the directory
    links to them, in ``[roles]``."""
    records = _records_of(session, actor)
    listed = [r for r in records if r.listed]
    # The accounts of this person: the one in use, and the other platform's of a listed record.
    accounts = [actor, *(Actor(platform, user) for r in listed
                         for platform, user in ((WECOM, r.wecom_userid), (DINGTALK, r.dingtalk_userid)) if user)]
    roles: set[str] = set()
    units: dict[str, set[str]] = {}
    if any(named(settings.roles.admins, a) for a in accounts):
        roles.add(ADMIN)
    if any(named(settings.roles.supervisors, a) for a in accounts):
        roles.add(SUPERVISOR)
    for unit_id, unit in settings.roles.units.items():
        for role, people in ((LEAD, unit.leads), (APPROVER, unit.approvers), (ACCOUNTABILITY, unit.accountability)):
            if any(named(people, a) for a in accounts):
                roles.add(role)
                units.setdefault(role, set()).add(unit_id)
    inspector_id = next((r.id for r in listed if r.active), None)
    if inspector_id:
        roles.add(INSPECTOR)
    persons = {r.id for r in records} | _named_by_bare_entry(session, settings, actor)
    return Identity(actor, frozenset(roles), {r: frozenset(u) for r, u in units.items()}, inspector_id,
                    frozenset(persons))


def _records_of(session: Session, actor: Actor) -> list[Row[str, bool, bool, str | None, str | None]]:
    """Every inspector record (any state) whose account on the actor's platform is the actor's."""
    if actor.platform in _RECORDS_OF:
        lookup, user = _RECORDS_OF[actor.platform], actor.user_id.lower()
    else:
        lookup, user = _RECORDS_BY_ID, actor.user_id
    # Core, not the ORM session: a plain read asked by every delivery.
    return list(session.connection().execute(lookup, {"user": user}).all())


def _named_by_bare_entry(session: Session, settings: Settings, actor: Actor) -> set[str]:
    """A bare ``[roles]`` entry is the same id on every platform, so one person: the
    inspectors with that id on any platform are the actor too."""
    if actor.user_id not in _bare_entries(settings):
        return set()
    return set(session.connection().execute(_BY_ANY_ACCOUNT, {"user": actor.user_id.lower()}).scalars())


def _bare_entries(settings: Settings) -> frozenset[str]:
    """The bare ``[roles]`` entries (settings are immutable once loaded: kept per object)."""
    found = _BARE.get(id(settings))
    if found is None or found[0] is not settings:
        found = _BARE[id(settings)] = (settings, frozenset(e for e in entries(settings) if is_bare(e)))
    return found[1]


_BARE: dict[int, tuple[Settings, frozenset[str]]] = {}


def _records_lookup(match: ColumnElement[bool]) -> Select[str, bool, bool, str | None, str | None]:
    return select_rows(col(Inspector.id), col(Inspector.active), col(Inspector.listed), col(Inspector.wecom_userid),
                  col(Inspector.dingtalk_userid)).where(match).order_by(col(Inspector.id))


# One statement per platform, built once: every delivery asks. WeCom user ids are
# case-insensitive (an expression index serves ``lower``); the console and the CLI name
# inspectors by id.
_RECORDS_OF = {platform: _records_lookup(func.lower(column) == bindparam("user"))
               for platform, column in _PLATFORM_ID.items()}
_RECORDS_BY_ID = _records_lookup(col(Inspector.id) == bindparam("user"))
_BY_ANY_ACCOUNT = union(*(select_rows(col(Inspector.id)).where(func.lower(column) == bindparam("user"))
                          for column in _PLATFORM_ID.values()))
