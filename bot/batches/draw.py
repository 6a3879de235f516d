"""The draw (DRAW.md §3–5): reveal the seed, select objects, staff the tasks.

The draw uses the pools and the roster frozen at publication (DRAW.md §8), whatever the
directory has become since (a batch published before rosters existed matches on the
directory at the draw). The inputs of matching are stored with the batch so that the
export and every later check use exactly them. A draw that cannot staff a task fails as
a whole and stores nothing; its refusal names no selected object (nothing is public
before the draw commits) and is audited by ``record_refusal``. Nothing is ever redrawn.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, true
from sqlmodel import Session, select

from bot.batches import options, roster
from bot.batches.notices import queue_draw_notices
from bot.batches.records import find_batch, strata_of
from bot.batches.selection import select_lines
from bot.bulkwork import spare_core, without_collections
from bot.clock import bureau_date
from bot.refusal import Refusal
from bot.rules import matching, ssr1
from bot.rules.arguments import ArgumentError, Arguments, parse_arguments
from bot.settings import Settings
from storage import audit
from storage.drawrows import DrawRows, Row
from storage.models import Batch, Conflict, InspectionObject, Inspector, Item, Stratum, Team, table_of
from storage.pools import TamperedPool, thaw
from storage.sealing import SealingError, sealer_of

DRAW_KEYS = frozenset({"batch", "beacon_value"})
IN_CHUNK = 10_000
STORE_CHUNK = 4096  # staffed tasks handed to storage at a time (storage.drawrows)


@dataclass(frozen=True)
class Drawn:
    batch: Batch
    selected: dict[str, int]  # stratum → objects selected
    tasks: int
    needs_expert: int


@dataclass(frozen=True)
class Selection:
    """What the seed selected (DRAW.md §4): a pure function of the published batch."""

    batch_id: str
    seed: str
    pool_digests: tuple[str, ...]
    chosen: tuple[tuple[ssr1.Scored, ...], ...]  # per stratum, in declared order
    tasks: list[ssr1.Task]


@dataclass(frozen=True)
class Prepared:
    """A draw worked out in a reading session, before the write transaction (chat 抽取):
    the selection, the matching inputs read for it and matching's outcome — assignments,
    or the refusal the draw must answer. ``draw`` uses it only where the write
    transaction finds the same seed, pools and inputs; otherwise it works again."""

    selection: Selection
    draw_date: date
    inputs: dict
    outcome: list[matching.Assignment] | Refusal


@without_collections
def prepare(session: Session, settings: Settings, text: str, now: datetime) -> Prepared | None:
    """The draw's long work — thawing and scoring every pool, matching — done read-only,
    so that a big draw holds no write lock meanwhile (SQLite: acknowledgements and other
    handlers go on). None where the draw is refused before that work (the write
    transaction meets the refusal itself)."""
    try:
        args = parse_arguments(text, DRAW_KEYS)
        opened = _opened(session, args)
        batch, seed = opened.batch, opened.seed
        selection = _select(session, batch, seed)
    except (ArgumentError, Refusal):
        return None
    draw_date = bureau_date(now, settings.bureau.timezone)
    inputs = matching_inputs(session, batch, selection.tasks, draw_date)
    outcome: list[matching.Assignment] | Refusal
    try:
        outcome = _match(batch, seed, selection.tasks, inputs)
    except Refusal as refusal:
        outcome = refusal
    return Prepared(selection, draw_date, inputs, outcome)


@without_collections
def draw(session: Session, settings: Settings, actor: str, args: Arguments, now: datetime,
         prepared: Prepared | None = None) -> Drawn:
    """Draw a published batch; on any refusal nothing is stored. ``prepared``: the same
    draw worked out before this transaction (``prepare``), used where it still holds."""
    opened = _opened(session, args)
    batch, seed = opened.batch, opened.seed
    strata = strata_of(session, batch.id)
    selection = prepared.selection if prepared is not None and _same(prepared.selection, batch, seed, strata) \
        else _select(session, batch, seed, strata)
    draw_date = bureau_date(now, settings.bureau.timezone)
    inputs = matching_inputs(session, batch, selection.tasks, draw_date)
    tasks = selection.tasks
    rows = DrawRows(session.connection(), batch.id, now, threaded=spare_core())
    try:
        if (prepared is not None and prepared.selection is selection and prepared.draw_date == draw_date
                and prepared.inputs == inputs):
            if isinstance(prepared.outcome, Refusal):
                raise prepared.outcome
            staffed = prepared.outcome
            rows.add(_rows(tasks, staffed, 0))
        else:
            staffed = _match_storing(batch, seed, tasks, inputs, rows)
        # Made while the last rows are stored (on SQLite, by the second thread).
        inputs["assignments"] = [{"object_id": a.object_id, "inspectors": list(a.inspectors), "team_id": a.team_id,
                                  "needs_expert": a.needs_expert} for a in staffed]  # the draw as made (SPEC §6)
        selected = [[[s.id, s.score] for s in chosen] for chosen in selection.chosen]
        rows.finish()
    except BaseException:
        rows.abandon()
        raise
    for stratum, picked in zip(strata, selected, strict=True):
        stratum.selected = picked
    batch.status, batch.drawn_at, batch.draw_date = "drawn", now, draw_date
    batch.secret, batch.seed, batch.beacon, batch.matching_inputs = opened.secret, seed, opened.beacon, inputs
    session.add_all([batch, *strata])
    session.flush()
    needs_expert = sum(a.needs_expert for a in staffed)
    counts = {stratum.name: len(chosen) for stratum, chosen in zip(strata, selection.chosen, strict=True)}
    audit.record(session, actor, "batch.drawn", batch.id, seed=seed, beacon=batch.beacon, tasks=len(tasks),
                 selected=counts, needs_expert=needs_expert)
    audit.anchor(session, "draw")  # the head with this draw in it, on the public index (README, "Anchors")
    queue_draw_notices(session, settings, batch, counts)  # with the draw, or not at all
    return Drawn(batch, counts, len(tasks), needs_expert)


@dataclass(frozen=True)
class Opened:
    """A published batch opened for its draw: the secret revealed, the beacon, the seed (§3)."""

    batch: Batch
    secret: str
    beacon: str
    seed: str


def _opened(session: Session, args: Arguments) -> Opened:
    batch = find_batch(session, options.required(args, "batch"), ("published",), "not_published")
    beacon = _beacon(batch, args.get("beacon_value"))
    secret = _secret(session, batch)
    return Opened(batch, secret, beacon, ssr1.seed(batch.id, secret, beacon))


def _select(session: Session, batch: Batch, seed: str, strata: list[Stratum] | None = None) -> Selection:
    """Each stratum's selection from its frozen pool (§4), and the task list."""
    strata = strata_of(session, batch.id) if strata is None else strata
    chosen = []
    for stratum in strata:
        # Frozen at publication, so set on every stratum of a published batch.
        assert stratum.pool is not None and stratum.pool_digest is not None and stratum.pool_runs is not None
        assert stratum.k is not None
        try:
            data = thaw(stratum.pool, stratum.pool_digest, stratum.pool_runs)
        except TamperedPool as exc:
            raise Refusal("pool_tampered", batch=batch.id, stratum=stratum.name, ids=exc.first_ids) from None
        chosen.append(tuple(select_lines(ssr1.stratum_seed(seed, stratum.name, stratum.pool_digest), data,
                                         stratum.k)))
    tasks = ssr1.task_list([(stratum.name, stratum.items, [s.id for s in picked])
                            for stratum, picked in zip(strata, chosen, strict=True)])
    return Selection(batch.id, seed, tuple(str(s.pool_digest) for s in strata), tuple(chosen), tasks)


def _same(selection: Selection, batch: Batch, seed: str, strata: list[Stratum]) -> bool:
    """Whether a selection made before still is this batch's: same seed, same pools."""
    return (selection.batch_id, selection.seed, selection.pool_digests) == \
        (batch.id, seed, tuple(str(s.pool_digest) for s in strata))


def _match(batch: Batch, seed: str, tasks: list[ssr1.Task], inputs: dict) -> list[matching.Assignment]:
    """Matching (§5) on the inputs; a task nobody can staff refuses the whole draw."""
    try:
        return match_recorded(seed, inputs)
    except matching.DrawFailure as exc:
        raise _cannot_staff(batch, tasks, exc) from None


def _match_storing(batch: Batch, seed: str, tasks: list[ssr1.Task], inputs: dict,
                   rows: DrawRows) -> list[matching.Assignment]:
    """``_match``, each chunk of staffed tasks handed to ``rows`` as soon as it is made, so
    that storing it (SQLite: on a second thread) overlaps matching the next."""
    staffed: list[matching.Assignment] = []
    given = 0
    try:
        for assignment in staff_recorded(seed, inputs):
            staffed.append(assignment)
            if len(staffed) - given == STORE_CHUNK:
                rows.add(_rows(tasks, staffed, given))
                given = len(staffed)
    except matching.DrawFailure as exc:
        raise _cannot_staff(batch, tasks, exc) from None
    rows.add(_rows(tasks, staffed, given))
    return staffed


def _rows(tasks: list[ssr1.Task], staffed: list[matching.Assignment], start: int) -> list[Row]:
    """The rows of the tasks staffed from position ``start`` on."""
    return [(n, t.object_id, t.strata, t.items, a.team_id, a.needs_expert, a.inspectors)
            for n, t, a in zip(range(start, len(staffed)), tasks[start:], staffed[start:], strict=False)]


def _cannot_staff(batch: Batch, tasks: list[ssr1.Task], exc: matching.DrawFailure) -> Refusal:
    # The object is not named: the selection is not public before the draw commits, and
    # whoever reads the refusal could otherwise learn it and cancel (DRAW.md §5, §8).
    first = next(t.strata[0] for t in tasks if t.object_id == exc.object_id)
    return Refusal("cannot_staff", batch=batch.id, reason=exc.reason, stratum=first, mode=exc.mode,
                   frozen=batch.roster_digest is not None)


def record_refusal(session: Session, actor: str, text: str, refusal: Refusal) -> None:
    """Audit a refused draw attempt: every attempt leaves a trace (DRAW.md §5).

    Called after the draw's own writes were undone, in a transaction that commits: the
    CLI's next one, the chat's delivery (with the answer). The entry holds the refusal
    and its values, which never name a selected object (``cannot_staff`` names the
    stratum, the mode and what was missing).
    """
    # a bad argument's ``subject`` (the key at fault) would collide with the entry's own subject
    values = {("argument" if key == "subject" else key): value for key, value in refusal.values.items()
              if key != "batch"}
    if isinstance(values.get("ids"), list):  # a tampered pool's first changed ids: a few say where
        values["ids"] = values["ids"][:10]
    subject = refusal.values.get("batch") or _batch_named(text)
    audit.record(session, actor, "draw.refused", str(subject), refusal=refusal.message, **values)


def _batch_named(text: str) -> str:
    try:
        return options.required(parse_arguments(text, DRAW_KEYS), "batch")
    except (ArgumentError, Refusal):
        return ""


def match_recorded(seed: str, inputs: dict) -> list[matching.Assignment]:
    """Matching (DRAW.md §5) run on the recorded inputs, exactly as a check re-runs it."""
    return list(staff_recorded(seed, inputs))


def staff_recorded(seed: str, inputs: dict) -> Iterator[matching.Assignment]:
    """``match_recorded`` one task at a time (``matching.staff``)."""
    objects = [matching.TaskObject(o["id"], o["unit"], frozenset(o["required_specialties"])) for o in inputs["objects"]]
    inspectors = [matching.Inspector(i["id"], i["unit"], frozenset(i["specialties"]), i["active"],
                                     qualified=i["qualified"]) for i in inputs["inspectors"]]
    teams = [matching.Team(t["id"], tuple(t["members"])) for t in inputs["teams"]]
    return matching.staff(seed, objects, inspectors, mode=inputs["mode"], teams=teams,
                          conflicts={tuple(pair) for pair in inputs["conflicts"]},
                          team_size=inputs["team_size"], slack=inputs["slack"])


def matching_inputs(session: Session, batch: Batch, tasks: list[ssr1.Task], on: date) -> dict:
    """Everything matching reads (SPEC §6 ``assignment.json``): inspectors, teams and
    conflicts from the roster frozen at publication (DRAW.md §8), or from the directory at
    the draw for a batch published before rosters existed."""
    needs = dict(session.exec(select(Item.code, Item.specialty)).all())
    units = units_of(session.connection(), [t.object_id for t in tasks])
    frozen = roster.frozen(batch)
    return {
        "mode": batch.mode, "team_size": batch.team_size, "slack": batch.slack, "draw_date": on.isoformat(),
        **(_directory_roster(session, on) if frozen is None else _frozen_roster(frozen, on)),
        "objects": [{"id": t.object_id, "unit": units[t.object_id],
                     "required_specialties": sorted({needs[i] for i in t.items if needs.get(i)})} for t in tasks],
    }


def units_of(connection: Connection, object_ids: list[str]) -> dict[str, str]:
    """Each object's unit, read through the driver: PostgreSQL takes the ids as one array,
    SQLite ``IN_CHUNK`` parameters a statement (drivers cap a statement's parameters); no
    per-parameter work in SQLAlchemy for tens of thousands of ids."""
    quote = connection.dialect.identifier_preparer
    id_, unit = quote.quote("id"), quote.quote("unit_id")
    query = f"SELECT {id_}, {unit} FROM {quote.format_table(table_of(InspectionObject))} WHERE {id_}"
    if connection.dialect.name == "postgresql":
        return dict(connection.exec_driver_sql(f"{query} = ANY(%s)", (object_ids,)).all())
    units: dict[str, str] = {}
    for start in range(0, len(object_ids), IN_CHUNK):
        chunk = tuple(object_ids[start:start + IN_CHUNK])
        units.update(connection.exec_driver_sql(f"{query} IN ({', '.join('?' * len(chunk))})", chunk).all())
    return units


def _frozen_roster(frozen: ssr1.Roster, on: date) -> dict:
    """Inspectors, teams and conflicts as frozen: ``qualified`` is the frozen expiry on or
    after the draw date, ``active`` the frozen flag (DRAW.md §8)."""
    return {
        "inspectors": [{"id": i.id, "unit": i.unit, "active": i.active, "qualified": i.qualified_on(on),
                        "specialties": list(i.specialties)} for i in sorted(frozen.inspectors, key=_by_id)],
        "teams": [{"id": t, "members": list(members)} for t, members in sorted(frozen.teams)],
        "conflicts": [list(pair) for pair in sorted(set(frozen.conflicts))],
    }


def _directory_roster(session: Session, on: date) -> dict:
    """Inspectors, teams and conflicts as they stand in the directory at the draw."""
    # Sorted here, not by the database: SQL collations need not be Unicode scalar order.
    inspectors = sorted(session.exec(select(Inspector).where(Inspector.listed == true())), key=_by_id)
    teams = sorted(session.exec(select(Team).where(Team.listed == true())), key=_by_id)
    conflicts = session.exec(select(Conflict.inspector_id, Conflict.object_id).where(Conflict.listed == true())).all()
    return {
        "inspectors": [{"id": i.id, "unit": i.unit_id, "active": i.active,
                        "qualified": i.certificate_expiry is not None and on <= i.certificate_expiry,
                        "specialties": sorted(i.specialties)} for i in inspectors],
        "teams": [{"id": t.id, "members": list(t.members)} for t in teams],
        "conflicts": [list(pair) for pair in sorted({(i, o) for i, o in conflicts})],
    }


def _by_id(row: Inspector | Team | ssr1.RosterInspector) -> str:
    return row.id


def _beacon(batch: Batch, value: str | None) -> str:
    """The beacon value verbatim: required when the plan announced one, refused otherwise."""
    if batch.beacon_rule and not value:
        raise Refusal("beacon_required", batch=batch.id, rule=batch.beacon_rule)
    if value and not batch.beacon_rule:
        raise Refusal("beacon_not_announced", batch=batch.id)
    return value or ""


def _secret(session: Session, batch: Batch) -> str:
    assert batch.secret_encrypted is not None  # sealed at publication
    try:
        secret = sealer_of(session).unseal(batch.secret_encrypted)
    except SealingError as exc:
        raise Refusal("sealing", reason=str(exc)) from None
    if ssr1.commitment(secret) != batch.commitment:
        raise Refusal("commitment_mismatch", batch=batch.id)
    return secret
