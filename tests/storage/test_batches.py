"""The batch life cycle through the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import zlib
from collections import Counter
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from bot import verifier
from bot.batches import create, draw, lifecycle, publish, recusal
from bot.batches.export import export
from bot.refusal import Refusal
from bot.rules import matching, ssr1
from bot.rules.arguments import parse_arguments
from bot.settings import Settings
from storage.db import transaction
from storage.importing import import_file
from storage.models import Assignment, AuditEntry, Batch, Conflict, InspectionObject, Stratum, Task
from storage.sealing import new_key
from tests.support.batch_district import batch_settings, seed_district

TODAY = date(2026, 11, 26)
NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


@pytest.fixture
def district(engine, tmp_path):
    seed_district(engine, tmp_path)
    return engine


def act(engine, function, text: str, keys, settings=None, **extra):
    args = parse_arguments(text, keys)
    with transaction(engine) as session:
        if function is create.new_batch:
            return create.new_batch(session, settings, "admin", args, TODAY)
        if function is create.add_stratum:
            return create.add_stratum(session, "admin", args)
        if function is lifecycle.cancel:
            return lifecycle.cancel(session, "admin", args, NOW)
        return function(session, settings, "admin", args, NOW)


def new(engine, settings, text="名称=食品抽查 事项=A01,A02 比例=10% 方式=交叉随机 截止=2026-12-31"):
    return act(engine, create.new_batch, text, create.NEW_KEYS, settings).batch.id


def count(engine, model) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(model)).scalar_one()


def test_full_cycle_exports_a_record_the_verifier_accepts(district, tmp_path):
    settings = batch_settings()
    batch_id = new(district, settings)
    assert batch_id == "2026-DS-001"
    made = act(district, create.add_stratum, f"批次={batch_id} 名称=异常 风险=经营异常 事项=A03 数量=3",
               create.STRATUM_KEYS)
    assert made.pool_size == 8  # n % 7 == 0 for n ≤ 60
    act(district, publish.publish, f"批次={batch_id} 信标=体彩排列3", publish.PUBLISH_KEYS, settings)
    with transaction(district) as session:
        batch = session.get(Batch, batch_id)
        main = session.exec(select(Stratum).where(Stratum.name == "main")).scalar_one()
    assert batch.secret is None and batch.secret_encrypted and len(batch.commitment) == 64
    members = sorted((f"9115060200000{n:05d}", 1) for n in range(1, 61))
    assert (main.pool_size, main.k, main.pool_digest) == (60, 6, ssr1.pool_digest(members))

    drawn = act(district, draw.draw, f"批次={batch_id} 信标值=3 1 4", draw.DRAW_KEYS, settings)
    assert drawn.selected == {"main": 6, "异常": 3}
    with transaction(district) as session:
        batch = session.get(Batch, batch_id)
        tasks = session.exec(select(Task).where(Task.batch_id == batch_id).order_by(Task.position)).scalars().all()
        teams = {t.id: [a.inspector_id for a in session.exec(select(Assignment).where(
            Assignment.task_id == t.id).order_by(Assignment.position)).scalars()] for t in tasks}
        objects = {o.id: o.unit_id for o in session.exec(select(InspectionObject)).scalars()}
        out = tmp_path / "export"
        export(session, batch_id, out, internal=True)
    assert batch.status == "drawn" and batch.beacon == "3 1 4"
    assert ssr1.commitment(batch.secret) == batch.commitment
    assert batch.seed == ssr1.seed(batch_id, batch.secret, "3 1 4")
    assert 6 <= len(tasks) <= 9 and all(len(team) == 2 for team in teams.values())
    units = {f"I{n:02d}": "S-DC" if n <= 4 else "S-XC" for n in range(1, 9)}
    for task in tasks:  # 交叉随机: never an inspector of the object's own unit
        assert all(units[i] != objects[task.object_id] for i in teams[task.id])
    assert verifier.main([str(out)]) == 0
    record = json.loads((out / "record.json").read_text("utf-8"))
    assert record["strata"][0]["ratio_percent"] == "10" and record["strata"][1]["ratio_percent"] is None
    assert record["strata"][1]["filter"] == "风险：经营异常"
    assert (out / "pool-异常.txt").read_text("utf-8").count("\n") == 8


@pytest.mark.parametrize("tamper", ["secret", "pool line", "selection", "assignment"])
def test_each_kind_of_tamper_is_detected(district, tmp_path, tamper, capsys):
    settings = batch_settings()
    batch_id = new(district, settings)
    act(district, publish.publish, f"批次={batch_id}", publish.PUBLISH_KEYS, settings)
    act(district, draw.draw, f"批次={batch_id}", draw.DRAW_KEYS, settings)
    out = tmp_path / "export"
    with transaction(district) as session:
        export(session, batch_id, out, internal=True)
    record_path, assignment_path = out / "record.json", out / "assignment.json"
    record = json.loads(record_path.read_text("utf-8"))
    assignment = json.loads(assignment_path.read_text("utf-8"))
    if tamper == "secret":
        record["secret"] = "1" + record["secret"][1:] if record["secret"][0] != "1" else "2" + record["secret"][1:]
    elif tamper == "selection":
        record["strata"][0]["selected"][0]["id"] = "9115060200000" + "99999"
    elif tamper == "assignment":
        assignment["assignments"][0]["inspectors"].reverse()
    else:
        pool = out / "pool-main.txt"
        pool.write_text(pool.read_text("utf-8").replace("|1\n", "|2\n", 1), encoding="utf-8")
    record_path.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    assignment_path.write_text(json.dumps(assignment, ensure_ascii=False), encoding="utf-8")
    assert verifier.main([str(out)]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_draw_uses_the_frozen_pool_and_refuses_a_tampered_one(district):
    settings = batch_settings()
    batch_id = new(district, settings)
    act(district, publish.publish, f"批次={batch_id}", publish.PUBLISH_KEYS, settings)
    with transaction(district) as session:
        stratum = session.exec(select(Stratum).where(Stratum.batch_id == batch_id)).scalar_one()
        lines = zlib.decompress(stratum.pool).replace(b"911506020000000007|1", b"911506020000000007|9")
        stratum.pool = zlib.compress(lines)
        session.add(stratum)
    with pytest.raises(Refusal) as refused:
        act(district, draw.draw, f"批次={batch_id}", draw.DRAW_KEYS, settings)
    assert refused.value.message == "pool_tampered" and "9115060200000" in refused.value.text()
    assert count(district, Task) == 0


def test_directory_changes_after_publication_do_not_change_the_pool(district, tmp_path):
    settings = batch_settings()
    batch_id = new(district, settings)
    act(district, publish.publish, f"批次={batch_id}", publish.PUBLISH_KEYS, settings)
    with transaction(district) as session:
        for obj in session.exec(select(InspectionObject)).scalars():
            obj.status = "deregistered"
            session.add(obj)
    assert act(district, draw.draw, f"批次={batch_id}", draw.DRAW_KEYS, settings).tasks == 6


def test_a_draw_that_cannot_staff_a_task_stores_nothing(district):
    settings = batch_settings(team_size=5)  # 小随机 with 4 inspectors per station
    batch_id = new(district, settings, "名称=x 事项=A01 数量=3 方式=小随机 截止=2026-12-31")
    act(district, publish.publish, f"批次={batch_id}", publish.PUBLISH_KEYS, settings)
    with pytest.raises(Refusal) as refused:
        act(district, draw.draw, f"批次={batch_id}", draw.DRAW_KEYS, settings)
    assert refused.value.message == "cannot_staff" and "小随机" in refused.value.text()
    with transaction(district) as session:
        assert session.get(Batch, batch_id).status == "published"
    assert count(district, Task) == 0 and count(district, Assignment) == 0


def test_beacon_rules_and_no_redraw(district):
    settings = batch_settings()
    with_beacon = new(district, settings)
    act(district, publish.publish, f"批次={with_beacon} 信标=体彩", publish.PUBLISH_KEYS, settings)
    with pytest.raises(Refusal, match="beacon_required"):
        act(district, draw.draw, f"批次={with_beacon}", draw.DRAW_KEYS, settings)
    without = new(district, settings)
    act(district, publish.publish, f"批次={without}", publish.PUBLISH_KEYS, settings)
    with pytest.raises(Refusal, match="beacon_not_announced"):
        act(district, draw.draw, f"批次={without} 信标值=1", draw.DRAW_KEYS, settings)
    act(district, draw.draw, f"批次={without}", draw.DRAW_KEYS, settings)
    with pytest.raises(Refusal, match="not_published"):
        act(district, draw.draw, f"批次={without}", draw.DRAW_KEYS, settings)


@pytest.mark.parametrize("text, message", [
    ("名称=x 事项=A01 比例=5% 数量=3 方式=大随机 截止=2026-12-31", "ratio_and_count"),
    ("名称=x 事项=A09 比例=5% 方式=大随机 截止=2026-12-31", "unknown_items"),
    ("名称=x 事项=A01 比例=5% 方式=随便 截止=2026-12-31", "bad_mode"),
    ("名称=x 事项=A01 比例=5% 方式=大随机 人数=1 截止=2026-12-31", "bad_size"),
    ("名称=x 事项=A01 比例=5% 方式=大随机 截止=2026-01-01", "due_in_past"),
    ("名称=x 事项=A01 方式=大随机 截止=2026-12-31", "missing_quota"),
    ("名称=x 事项=A01 比例=5% 方式=大随机 截止=2026-12-31 牵头=NOPE", "unknown_unit"),
])
def test_bad_requests_are_refused_and_write_nothing(district, text, message):
    with pytest.raises(Refusal) as refused:
        new(district, batch_settings(), text)
    assert refused.value.message == message and refused.value.text()
    assert count(district, Batch) == 0 and count(district, AuditEntry) == 5  # the five imports


def test_strata_names_are_unique_ignoring_case(district):
    settings = batch_settings()
    batch_id = new(district, settings)
    with pytest.raises(Refusal, match="repeated_stratum"):
        act(district, create.add_stratum, f"批次={batch_id} 名称=MAIN 数量=2", create.STRATUM_KEYS)


def test_cancel_keeps_the_batch_and_frees_its_objects(district):
    settings = batch_settings(frequency_cap=1)
    first = new(district, settings, "名称=x 事项=A01 数量=60 方式=大随机 截止=2026-12-31")
    act(district, publish.publish, f"批次={first}", publish.PUBLISH_KEYS, settings)
    act(district, draw.draw, f"批次={first}", draw.DRAW_KEYS, settings)
    second = new(district, settings, "名称=y 事项=A01 数量=5 方式=大随机 截止=2026-12-31")
    act(district, publish.publish, f"批次={second}", publish.PUBLISH_KEYS, settings)
    with transaction(district) as session:
        assert session.exec(select(Stratum).where(Stratum.batch_id == second)).scalar_one().pool_size == 0
    act(district, lifecycle.cancel, f"批次={first} 原因=计划调整", lifecycle.CANCEL_KEYS)
    third = new(district, settings, "名称=z 事项=A01 数量=5 方式=大随机 截止=2026-12-31")
    act(district, publish.publish, f"批次={third}", publish.PUBLISH_KEYS, settings)
    with transaction(district) as session:
        assert session.get(Batch, first).cancel_reason == "计划调整"
        assert session.exec(select(Stratum).where(Stratum.batch_id == third)).scalar_one().pool_size == 60
    with pytest.raises(Refusal, match="already_final"):
        act(district, lifecycle.cancel, f"批次={first} 原因=again", lifecycle.CANCEL_KEYS)


def test_risk_weights_enter_the_pool(district):
    settings = batch_settings(risk_weights={"abnormal": 2})
    batch_id = new(district, settings)
    act(district, publish.publish, f"批次={batch_id}", publish.PUBLISH_KEYS, settings)
    with transaction(district) as session:
        stratum = session.exec(select(Stratum).where(Stratum.batch_id == batch_id)).scalar_one()
    lines = zlib.decompress(stratum.pool).decode().splitlines()
    assert sum(line.endswith("|3") for line in lines) == 8 and sum(line.endswith("|1") for line in lines) == 52


def test_recusal_draws_a_replacement_and_is_idempotent(district):
    settings = batch_settings()
    batch_id = new(district, settings, "名称=x 事项=A01 数量=4 方式=大随机 截止=2026-12-31")
    act(district, publish.publish, f"批次={batch_id}", publish.PUBLISH_KEYS, settings)
    act(district, draw.draw, f"批次={batch_id}", draw.DRAW_KEYS, settings)
    with transaction(district) as session:
        task = session.exec(select(Task).where(Task.position == 0)).scalar_one()
        lead = session.exec(select(Assignment).where(Assignment.task_id == task.id,
                                                    Assignment.position == 0)).scalar_one()
        done = recusal.recuse(session, "wecom:x", task.id, lead.inspector_id, "亲属关系", TODAY, NOW)
    assert done.replacement and done.replacement != lead.inspector_id and not done.already
    with transaction(district) as session:
        again = recusal.recuse(session, "wecom:x", task.id, lead.inspector_id, "亲属关系", TODAY, NOW)
        team = [a.inspector_id for a in session.exec(select(Assignment).where(
            Assignment.task_id == task.id, Assignment.status != "recused")).scalars()]
        conflict = session.exec(select(Conflict).where(Conflict.origin == "recusal")).scalar_one()
    assert again.already and again.replacement == done.replacement and len(team) == 2
    assert (conflict.inspector_id, conflict.object_id) == (lead.inspector_id, task.object_id)
    assert count(district, Assignment) == 9  # 4 tasks × 2, plus one replacement, nothing more


def test_recusal_with_nobody_left_marks_the_task_unstaffed(district):
    settings = batch_settings()
    batch_id = new(district, settings, "名称=x 事项=A01 数量=1 方式=小随机 截止=2026-12-31")
    act(district, publish.publish, f"批次={batch_id}", publish.PUBLISH_KEYS, settings)
    act(district, draw.draw, f"批次={batch_id}", draw.DRAW_KEYS, settings)
    with transaction(district) as session:
        task = session.exec(select(Task)).scalar_one()
        for _ in range(3):  # a station of four: two replacements, then nobody
            member = session.exec(select(Assignment).where(Assignment.task_id == task.id,
                                                          Assignment.status != "recused")).scalars().first()
            result = recusal.recuse(session, "t", task.id, member.inspector_id, "其他", TODAY, NOW)
        assert result.replacement is None and session.get(Task, task.id).status == "unstaffed"


def test_a_replacement_is_drawn_with_the_loads_as_they_stand(district):
    """DRAW.md §6: passes 1–2 take nobody at the load cap while an open candidate is left."""
    settings = batch_settings()
    for _ in range(10):  # each batch a new secret, so a new walk
        batch_id = new(district, settings, "名称=x 事项=A01 数量=4 方式=大随机 截止=2026-12-31")
        act(district, publish.publish, f"批次={batch_id}", publish.PUBLISH_KEYS, settings)
        act(district, draw.draw, f"批次={batch_id}", draw.DRAW_KEYS, settings)
        with transaction(district) as session:
            drawn = session.exec(select(Assignment).join(Task, Task.id == Assignment.task_id)
                                 .where(Task.batch_id == batch_id)).scalars().all()
            loads = Counter(a.inspector_id for a in drawn)
            task_id = min(a.task_id for a in drawn)
            team = {a.inspector_id for a in drawn if a.task_id == task_id}
            lead = next(a.inspector_id for a in drawn if a.task_id == task_id and a.position == 0)
            done = recusal.recuse(session, "t", task_id, lead, "其他", TODAY, NOW)
        loads[lead] -= 1
        cap = matching.load_cap(2, 4, 8, 1)
        assert any(loads[f"I{n:02d}"] < cap for n in range(1, 9) if f"I{n:02d}" not in team)
        assert loads[done.replacement] < cap, (done.replacement, dict(loads))


@pytest.mark.parametrize("mode", ["交叉随机", "编组随机"])
def test_a_synthetic_district_batch_round_trips_through_export_and_verify(engine, tmp_path, mode):
    from bot.synthetic_district import generate_district
    from storage.importing import import_file

    for kind, path in generate_district(tmp_path / "district", objects=3000).items():
        assert import_file(engine, kind, path, actor="test").ok
    settings = Settings(security={"keys": [new_key()]}, bureau={"default_lead": "U-XYS"})
    batch_id = new(engine, settings, f"名称=综合 事项=A01 比例=3% 方式={mode} 截止=2026-12-31")
    act(engine, create.add_stratum, f"批次={batch_id} 名称=重点领域 风险=重点领域 事项=A01,A05 比例=5%",
        create.STRATUM_KEYS)
    act(engine, publish.publish, f"批次={batch_id} 信标=次日体彩排列三", publish.PUBLISH_KEYS, settings)
    act(engine, draw.draw, f"批次={batch_id} 信标值=0 7 3", draw.DRAW_KEYS, settings)
    with transaction(engine) as session:
        export(session, batch_id, tmp_path / "out", internal=True)
    assert verifier.main([str(tmp_path / "out")]) == 0


def test_a_batch_advances_with_its_tasks(district):
    settings = batch_settings()
    batch_id = new(district, settings, "名称=x 事项=A01 数量=2 方式=大随机 截止=2026-12-31")
    act(district, publish.publish, f"批次={batch_id}", publish.PUBLISH_KEYS, settings)
    act(district, draw.draw, f"批次={batch_id}", draw.DRAW_KEYS, settings)

    def set_tasks(*statuses):
        with transaction(district) as session:
            tasks = session.exec(select(Task).order_by(Task.position)).scalars().all()
            for task, status in zip(tasks, statuses, strict=True):
                task.status = status
                session.add(task)
            return lifecycle.advance(session, "system", batch_id, NOW).status

    assert set_tasks("drawn", "drawn") == "drawn"
    assert set_tasks("inspected", "drawn") == "in_progress"
    assert set_tasks("approved", "submitted") == "in_progress"  # inspected but unpublished is not complete
    assert set_tasks("approved", "approved") == "completed"
    with pytest.raises(Refusal, match="already_final"):
        act(district, lifecycle.cancel, f"批次={batch_id} 原因=x", lifecycle.CANCEL_KEYS)


# -- DRAW.md §8: the roster frozen at publication --------------------------------------------------------------------

FROZEN_CONFLICTS = "inspector_id,object_id,reason\n" + "".join(
    f"I02,9115060200000{n:05d},亲属关系\n" for n in range(1, 61))  # I02 may inspect nobody
# After publication: a favoured newcomer I09 (qualified, in the office, so eligible for every object), the
# conflicts dropped, and everyone but I01 and I02 out of post.
CHANGED_INSPECTORS = "id,name,unit,certificate_no,certificate_expiry,specialties,active\n" + "".join(
    f"I{n:02d},检查员{n},{unit},C{n},2030-12-31,,{'true' if n in (1, 2, 9) else 'false'}\n"
    for n, unit in [(1, "S-DC"), (2, "S-DC"), (3, "S-DC"), (4, "S-DC"), (5, "S-XC"), (6, "S-XC"), (7, "S-XC"),
                    (8, "S-XC"), (9, "U-XY")])


def import_text(engine, tmp_path, kind, text):
    path = tmp_path / f"{kind}-{count(engine, AuditEntry)}.csv"
    path.write_text(text, encoding="utf-8")
    outcome = import_file(engine, kind, path, actor="test")
    assert outcome.ok, outcome.problems


def change_the_directory(engine, tmp_path):
    import_text(engine, tmp_path, "inspectors", CHANGED_INSPECTORS)
    import_text(engine, tmp_path, "conflicts", "inspector_id,object_id,reason\n")  # every conflict delisted


def teams_of(engine, batch_id) -> dict[str, list[str]]:
    with transaction(engine) as session:
        tasks = session.exec(select(Task).where(Task.batch_id == batch_id).order_by(Task.position)).scalars().all()
        return {t.object_id: [a.inspector_id for a in session.exec(select(Assignment).where(
            Assignment.task_id == t.id).order_by(Assignment.position)).scalars()] for t in tasks}


def test_the_draw_matches_on_the_roster_frozen_at_publication(district, tmp_path):
    """Add a favoured inspector and drop a conflict between publication and draw: the teams
    are what the frozen roster gives (recomputed here from its lines alone)."""
    settings = batch_settings()
    import_text(district, tmp_path, "conflicts", FROZEN_CONFLICTS)
    batch_id = new(district, settings, "名称=x 事项=A01,A02 数量=6 方式=大随机 截止=2026-12-31")
    act(district, publish.publish, f"批次={batch_id}", publish.PUBLISH_KEYS, settings)
    with transaction(district) as session:
        published = session.get(Batch, batch_id)
        frozen_text = zlib.decompress(published.roster).decode()
        digest = published.roster_digest
    assert digest == ssr1.H(frozen_text) and "C|I02|911506020000000001\n" in frozen_text
    assert "I|I03|S-DC|1|2030-12-31|特种设备\n" in frozen_text and "|I09|" not in frozen_text

    change_the_directory(district, tmp_path)
    drawn = act(district, draw.draw, f"批次={batch_id}", draw.DRAW_KEYS, settings)
    teams = teams_of(district, batch_id)
    on_teams = {i for team in teams.values() for i in team}
    assert drawn.tasks == 6 and not on_teams & {"I02", "I09"}  # conflicted as frozen; not on the roster
    assert on_teams - {"I01"}  # out of post in the directory now, in post as frozen

    roster = ssr1.parse_roster(frozen_text)
    with transaction(district) as session:
        batch = session.get(Batch, batch_id)
        objects = [matching.TaskObject(o["id"], o["unit"], frozenset(o["required_specialties"]))
                   for o in batch.matching_inputs["objects"]]
        people = [matching.Inspector(i.id, i.unit, frozenset(i.specialties), i.active, i.expiry)
                  for i in roster.inspectors]
        expected = matching.match(batch.seed, objects, people, mode="all", on=TODAY, conflicts=set(roster.conflicts))
        out = tmp_path / "export"
        export(session, batch_id, out, internal=True)
    assert teams == {a.object_id: list(a.inspectors) for a in expected}
    assert (out / "roster.txt").read_text("utf-8") == frozen_text
    assert json.loads((out / "record.json").read_text("utf-8"))["roster_digest"] == digest
    assert verifier.verify(out).endswith("assignment checked against the roster / 核验一致")


def test_a_batch_published_before_rosters_matches_on_the_directory_at_the_draw(district, tmp_path):
    settings = batch_settings()
    import_text(district, tmp_path, "conflicts", FROZEN_CONFLICTS)
    batch_id = new(district, settings, "名称=x 事项=A01 数量=6 方式=大随机 截止=2026-12-31")
    act(district, publish.publish, f"批次={batch_id}", publish.PUBLISH_KEYS, settings)
    with transaction(district) as session:  # as migration 0012 leaves a batch published before it
        batch = session.get(Batch, batch_id)
        batch.roster, batch.roster_digest = None, None
        session.add(batch)
    change_the_directory(district, tmp_path)
    act(district, draw.draw, f"批次={batch_id}", draw.DRAW_KEYS, settings)
    on_teams = {i for team in teams_of(district, batch_id).values() for i in team}
    assert on_teams <= {"I01", "I02", "I09"} and "I09" in on_teams  # the directory as it stood at the draw
    out = tmp_path / "export"
    with transaction(district) as session:
        export(session, batch_id, out, internal=True)
    assert json.loads((out / "record.json").read_text("utf-8"))["roster_digest"] is None
    assert not (out / "roster.txt").exists()
    assert verifier.verify(out).endswith("assignment checked / 核验一致")


def test_a_tampered_frozen_roster_is_refused_and_nothing_is_drawn(district):
    settings = batch_settings()
    batch_id = new(district, settings, "名称=x 事项=A01 数量=2 方式=大随机 截止=2026-12-31")
    act(district, publish.publish, f"批次={batch_id}", publish.PUBLISH_KEYS, settings)
    with transaction(district) as session:
        batch = session.get(Batch, batch_id)
        lines = zlib.decompress(batch.roster).decode() + "I|I99|S-DC|1|2030-12-31|食品\n"
        batch.roster = zlib.compress(lines.encode())
        session.add(batch)
    with pytest.raises(Refusal) as refused:
        act(district, draw.draw, f"批次={batch_id}", draw.DRAW_KEYS, settings)
    assert refused.value.message == "roster_tampered" and batch_id in refused.value.text()
    assert count(district, Task) == 0


def test_a_replacement_skips_a_conflict_frozen_with_the_roster_even_if_dropped_since(district, tmp_path):
    """Eligibility is the directory's on the day of a recusal (DRAW.md §6), but dropping a
    frozen conflict after publication does not make that inspector a replacement."""
    settings = batch_settings()
    import_text(district, tmp_path, "conflicts", FROZEN_CONFLICTS)
    batch_id = new(district, settings, "名称=x 事项=A01 数量=1 方式=小随机 管辖=S-DC 截止=2026-12-31")
    act(district, publish.publish, f"批次={batch_id}", publish.PUBLISH_KEYS, settings)
    act(district, draw.draw, f"批次={batch_id}", draw.DRAW_KEYS, settings)
    import_text(district, tmp_path, "conflicts", "inspector_id,object_id,reason\n")
    with transaction(district) as session:
        task = session.exec(select(Task)).scalar_one()
        replacements = []
        for _ in range(3):  # S-DC has I01–I04; I02 is conflicted with every object
            member = session.exec(select(Assignment).where(Assignment.task_id == task.id,
                                                          Assignment.status != "recused")).scalars().first()
            replacements.append(recusal.recuse(session, "t", task.id, member.inspector_id, "其他", TODAY,
                                               NOW).replacement)
        assigned = set(session.exec(select(Assignment.inspector_id).where(Assignment.task_id == task.id)).scalars())
    assert assigned == {"I01", "I03", "I04"} and replacements[1:] == [None, None]
