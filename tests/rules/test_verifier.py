"""The citizen's verifier (SPEC §3 ``verify``, §6 export; DRAW.md §7).

Records are built here from ``bot.rules`` and checked by ``bot.verifier``, which shares
no code with them: agreement is a check of both against DRAW.md.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import verifier
from bot.rules import ssr1
from bot.rules.matching import Inspector, TaskObject, Team, match

VERIFIER = Path(verifier.__file__)
SECRET = "0000000000000000000000000000000000000000000000000000000000000001"
APPENDIX_POOL = [("91150602MA0N000001", 1), ("91150602MA0N000002", 2), ("91150602MA0N000003", 1),
                 ("91150602MA0N000004", 1), ("L-产品-0007", 3)]
FOOD_POOL = [(f"9115{n:04d}", 1 + n % 3) for n in range(40)] + [("91150602MA0N000002", 2)]
ITEM_SPECIALITY = {"A01": "food", "A02": "price", "B01": "food", "B02": "drug"}


def roster_lines(people, teams, conflicts) -> list[str]:
    """The frozen roster of DRAW.md §8 for ``people`` (qualified: a certificate valid
    through 2030, else one that ran out before the draw date 2026-03-01)."""
    return ([ssr1.inspector_line(p.id, p.unit, p.active, date(2030, 12, 31) if p.qualified else date(2026, 2, 28),
                                 p.specialties) for p in people]
            + [ssr1.team_line(t.id, t.members) for t in teams] + [ssr1.conflict_line(*c) for c in conflicts])


def export(directory: Path, strata, *, batch="2026-DS-001", beacon="", mode="all",
           people=(), teams=(), units=None, conflicts=(), team_size=2, slack=1, roster=False) -> Path:
    """Writes record.json, pool files and (with ``people``) assignment.json per SPEC §6,
    and with ``roster`` the frozen roster.txt whose digest the record carries."""
    seed = ssr1.seed(batch, SECRET, beacon)
    record_strata, selections = [], []
    for name, items, members, ratio, count in strata:
        lines = ssr1.pool_lines(members)
        (directory / f"pool-{name}.txt").write_bytes("".join(lines).encode())
        digest = ssr1.pool_digest(members)
        k = ssr1.k_for_ratio(len(lines), ratio) if ratio else count
        chosen = ssr1.select(ssr1.stratum_seed(seed, name, digest), members, k)
        selections.append((name, items, [s.id for s in chosen]))
        record_strata.append({
            "name": name, "filter": None, "items": items, "pool_size": len(lines),
            "pool_digest": digest, "ratio_percent": ssr1.ratio_text(ratio) if ratio else None,
            "k": k, "pool_file": f"pool-{name}.txt",
            "selected": [{"id": s.id, "score": s.score} for s in chosen]})
    tasks = ssr1.task_list(selections)
    digest = None
    if roster:
        text = ssr1.roster_text(roster_lines(people, teams, conflicts))
        (directory / "roster.txt").write_text(text, "utf-8")
        digest = ssr1.H(text)
    record = {"algorithm": "SSR-1", "batch_id": batch, "commitment": ssr1.commitment(SECRET),
              "secret": SECRET, "beacon": beacon, "seed": seed, "roster_digest": digest, "strata": record_strata,
              "tasks": [{"object_id": t.object_id, "strata": list(t.strata), "items": list(t.items)}
                        for t in tasks]}
    (directory / "record.json").write_text(json.dumps(record, ensure_ascii=False), "utf-8")
    if people:
        units = units or {}
        objects = [TaskObject(t.object_id, units.get(t.object_id, "U1"),
                              {ITEM_SPECIALITY[i] for i in t.items if i in ITEM_SPECIALITY})
                   for t in tasks]
        staffed = match(seed, objects, people, mode=mode, teams=teams, conflicts=set(conflicts),
                        team_size=team_size, slack=slack)
        assignment = {
            "mode": mode, "team_size": team_size, "slack": slack, "draw_date": "2026-03-01",
            "inspectors": [{"id": p.id, "unit": p.unit, "active": p.active, "qualified": p.qualified,
                            "specialties": sorted(p.specialties)} for p in sorted(people, key=lambda p: p.id)],
            "teams": [{"id": t.id, "members": sorted(t.members) if roster else list(t.members)}
                      for t in sorted(teams, key=lambda t: t.id)],
            "objects": [{"id": o.id, "unit": o.unit, "required_specialties": sorted(o.required_specialties)}
                        for o in objects],
            "conflicts": sorted([list(c) for c in conflicts]),
            "assignments": [{"object_id": a.object_id, "inspectors": list(a.inspectors),
                             "team_id": a.team_id, "needs_expert": a.needs_expert} for a in staffed]}
        (directory / "assignment.json").write_text(json.dumps(assignment, ensure_ascii=False), "utf-8")
    return directory


PEOPLE = [Inspector(f"I{n:02d}", f"U{n % 3}", frozenset({"food"} if n % 4 == 0 else ()), qualified=n != 5)
          for n in range(12)]
STRATA = [("main", ["A01", "A02"], APPENDIX_POOL, None, 2),
          ("食品", ["B01", "A01", "B02"], FOOD_POOL, "12.5", None),
          ("Recheck", ["B02", "A02"], APPENDIX_POOL, None, 9)]  # all selected: merges with main


@pytest.fixture
def batch(tmp_path):
    """A three-stratum batch whose first task's lead was moved off it by a conflict."""
    export(tmp_path, STRATA, people=PEOPLE)
    first = json.loads((tmp_path / "assignment.json").read_text("utf-8"))["assignments"][0]
    return export(tmp_path, STRATA, people=PEOPLE, conflicts=[(first["inspectors"][0], first["object_id"])])


def run(directory, capsys) -> tuple[int, str]:
    code = verifier.main([str(directory)])
    return code, capsys.readouterr().out.strip()


def edit(path: Path, change) -> None:
    data = json.loads(path.read_text("utf-8"))
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")


class TestAccepts:
    def test_a_good_batch(self, batch, capsys):
        code, out = run(batch, capsys)
        record = json.loads((batch / "record.json").read_text("utf-8"))
        assert code == 0
        assert out.startswith(f"SSR-1 OK batch 2026-DS-001: 3 strata, {len(record['tasks'])} tasks, "
                              "assignment checked")
        assert any(len(t["strata"]) == 2 for t in record["tasks"])  # the merge was exercised

    def test_the_appendix_example(self, tmp_path, capsys):
        export(tmp_path, [("main", ["A01"], APPENDIX_POOL, None, 2)],
               people=[Inspector(f"I0{n}", "U1", qualified=True) for n in range(1, 5)])
        assignment = json.loads((tmp_path / "assignment.json").read_text("utf-8"))
        assert [a["inspectors"] for a in assignment["assignments"]] == [["I02", "I04"], ["I04", "I03"]]
        assert run(tmp_path, capsys) == (0, "SSR-1 OK batch 2026-DS-001: 1 strata, 2 tasks, "
                                            "assignment checked / 核验一致")

    def test_record_alone(self, tmp_path, capsys):
        export(tmp_path, STRATA + [("empty", ["A01"], [], "5", None)], beacon="2026-03-01 双色球 03 15")
        code, out = run(tmp_path, capsys)
        assert code == 0 and "4 strata" in out and "no assignment.json" in out

    @pytest.mark.parametrize("mode", ["unit", "cross", "team"])
    def test_other_modes(self, tmp_path, capsys, mode):
        teams = [Team("T1", ("I01", "I02")), Team("T2", ("I03", "I04", "I03")), Team("T3", ("I05", "I06")),
                 Team("T4", ("I07", "I08"))]
        units = {oid: f"U{n % 3}" for n, (oid, _) in enumerate(APPENDIX_POOL + FOOD_POOL)}
        export(tmp_path, STRATA, people=PEOPLE, mode=mode, teams=teams, units=units,
               conflicts=[("I01", "91150602MA0N000002")], slack=0)
        assert run(tmp_path, capsys)[0] == 0

    def test_runs_standalone(self, batch):
        # Isolated mode, another directory: nothing of the project is importable.
        done = subprocess.run([sys.executable, "-I", str(VERIFIER), str(batch)], cwd=batch,
                              capture_output=True, text=True, encoding="utf-8")
        assert done.returncode == 0 and done.stdout.startswith("SSR-1 OK"), done.stdout + done.stderr


class TestRejects:
    def expect(self, batch, capsys, *words):
        code, out = run(batch, capsys)
        assert code == 1, out
        assert out.startswith("SSR-1 MISMATCH")
        for word in words:
            assert word in out, out
        return out

    def test_secret(self, batch, capsys):
        edit(batch / "record.json", lambda r: r.update(secret="2" + SECRET[1:]))
        self.expect(batch, capsys, "commitment", ssr1.commitment(SECRET))

    def test_seed(self, batch, capsys):
        edit(batch / "record.json", lambda r: r.update(beacon="x"))
        self.expect(batch, capsys, "seed")

    def test_pool_line(self, batch, capsys):
        path = batch / "pool-食品.txt"
        path.write_text(path.read_text("utf-8").replace("91150000|1", "91150000|2"), "utf-8")
        self.expect(batch, capsys, "stratum 食品", "pool_digest")

    def test_pool_line_with_digest_forged_to_match(self, batch, capsys):
        path = batch / "pool-main.txt"
        lines = path.read_text("utf-8").splitlines(keepends=True)
        forged = "".join([lines[1], lines[0]] + lines[2:])
        path.write_text(forged, "utf-8")
        edit(batch / "record.json", lambda r: r["strata"][0].update(pool_digest=ssr1.H(forged)))
        self.expect(batch, capsys, "pool-main.txt line 2", "out of order")

    def test_malformed_pool_line(self, batch, capsys):
        path = batch / "pool-main.txt"
        text = path.read_text("utf-8").replace("|3\n", "|11\n")
        path.write_text(text, "utf-8")
        edit(batch / "record.json", lambda r: r["strata"][0].update(pool_digest=ssr1.H(text)))
        self.expect(batch, capsys, "line 5", "'id|w'")

    def test_pool_size(self, batch, capsys):
        edit(batch / "record.json", lambda r: r["strata"][0].update(pool_size=6))
        self.expect(batch, capsys, "pool_size", "expected 5, found 6")

    def test_k_against_ratio(self, batch, capsys):
        edit(batch / "record.json", lambda r: r["strata"][1].update(k=5))
        self.expect(batch, capsys, "stratum 食品", "ceil(pool_size * 12.5 / 100)", "expected 6, found 5")

    def test_selection_id(self, batch, capsys):
        def swap(r):
            sel = r["strata"][0]["selected"]
            sel[0]["id"], sel[1]["id"] = sel[1]["id"], sel[0]["id"]
        edit(batch / "record.json", swap)
        self.expect(batch, capsys, "stratum main", "selected[0] id", "L-产品-0007")

    def test_selection_score(self, batch, capsys):
        edit(batch / "record.json", lambda r: r["strata"][1]["selected"][2].update(score="0" * 64))
        self.expect(batch, capsys, "stratum 食品", "selected[2] score")

    def test_selection_dropped(self, batch, capsys):
        edit(batch / "record.json", lambda r: r["strata"][1]["selected"].pop())
        self.expect(batch, capsys, "number selected")

    def test_task_items(self, batch, capsys):
        # Task 1 merges main (A01, A02) and Recheck (B02, A02): items A01, A02, B02.
        edit(batch / "record.json", lambda r: r["tasks"][1]["items"].reverse())
        self.expect(batch, capsys, "task 1 (object 91150602MA0N000002): items",
                    "expected ['A01', 'A02', 'B02'], found ['B02', 'A02', 'A01']")

    def test_task_dropped(self, batch, capsys):
        edit(batch / "record.json", lambda r: r["tasks"].pop())
        self.expect(batch, capsys, "number of tasks")

    def test_assignment_inspectors(self, batch, capsys):
        edit(batch / "assignment.json", lambda a: a["assignments"][3]["inspectors"].reverse())
        self.expect(batch, capsys, "assignment 3", "inspectors")

    def test_assignment_needs_expert(self, batch, capsys):
        edit(batch / "assignment.json",
             lambda a: a["assignments"][0].update(needs_expert=not a["assignments"][0]["needs_expert"]))
        self.expect(batch, capsys, "assignment 0", "needs_expert")

    def test_assignment_conflict_hidden(self, batch, capsys):
        edit(batch / "assignment.json", lambda a: a.update(conflicts=[]))
        self.expect(batch, capsys, "assignment 0", "inspectors")

    def test_assignment_objects_out_of_task_order(self, batch, capsys):
        edit(batch / "assignment.json", lambda a: a["objects"].reverse())
        self.expect(batch, capsys, "objects in task order")

    def test_pool_file_outside_the_directory(self, batch, capsys):
        edit(batch / "record.json", lambda r: r["strata"][0].update(pool_file="../pool-main.txt"))
        self.expect(batch, capsys, "pool_file")

    def test_missing_and_broken_files(self, batch, capsys):
        (batch / "pool-main.txt").unlink()
        self.expect(batch, capsys, "cannot read")
        (batch / "record.json").write_text("{", "utf-8")
        self.expect(batch, capsys, "cannot read")
        (batch / "record.json").write_text("{}", "utf-8")
        self.expect(batch, capsys, "malformed")

    def test_usage(self, capsys):
        assert verifier.main([]) == 2


ROSTER_TEAMS = [Team("T1", ("I01", "I02")), Team("T2", ("I04", "I03")), Team("T3", ("I06", "I07"))]
ROSTER_CONFLICTS = [("I01", "91150602MA0N000002"), ("I03", "L-产品-0007")]


@pytest.fixture
def rostered(tmp_path):
    """A batch with its frozen roster (DRAW.md §8) beside assignment.json."""
    return export(tmp_path, STRATA, people=PEOPLE, teams=ROSTER_TEAMS, conflicts=ROSTER_CONFLICTS, roster=True)


class TestFrozenRoster:
    expect = TestRejects.expect

    def forge(self, batch, text):
        """Write roster.txt and the digest that goes with it: only the lines can be wrong."""
        (batch / "roster.txt").write_text(text, "utf-8")
        edit(batch / "record.json", lambda r: r.update(roster_digest=ssr1.H(text)))

    @pytest.mark.parametrize("mode", ["all", "team"])
    def test_accepted_and_checked(self, tmp_path, capsys, mode):
        export(tmp_path, STRATA, people=PEOPLE, teams=ROSTER_TEAMS, conflicts=ROSTER_CONFLICTS, roster=True,
               mode=mode)
        code, out = run(tmp_path, capsys)
        assert code == 0 and "assignment checked against the roster" in out, out
        text = (tmp_path / "roster.txt").read_text("utf-8")
        assert "C|I01|91150602MA0N000002\n" in text and "T|T2|I03;I04\n" in text
        assert "I|I00|U0|1|2030-12-31|food\n" in text and "I|I05|U2|1|2026-02-28|\n" in text

    def test_a_tampered_roster(self, rostered, capsys):
        # A conflict dropped from the frozen roster after publication (DRAW.md §8).
        path = rostered / "roster.txt"
        path.write_text(path.read_text("utf-8").replace("C|I01|91150602MA0N000002\n", ""), "utf-8")
        self.expect(rostered, capsys, "roster_digest (SHA-256 of roster.txt)")

    def test_a_conflict_left_out_of_the_inputs(self, rostered, capsys):
        edit(rostered / "assignment.json", lambda a: a["conflicts"].pop(0))
        self.expect(rostered, capsys, "conflicts", "as roster.txt gives")

    def test_an_inspector_made_qualified(self, rostered, capsys):
        edit(rostered / "assignment.json", lambda a: a["inspectors"][5].update(qualified=True))
        self.expect(rostered, capsys, "inspectors[5]", "as roster.txt gives")

    def test_an_inspector_added_to_the_inputs(self, rostered, capsys):
        edit(rostered / "assignment.json", lambda a: a["inspectors"].append(
            {"id": "I99", "unit": "U1", "active": True, "qualified": True, "specialties": ["food"]}))
        self.expect(rostered, capsys, "number of inspectors")

    def test_a_team_changed(self, rostered, capsys):
        edit(rostered / "assignment.json", lambda a: a["teams"][0].update(members=["I01", "I05"]))
        self.expect(rostered, capsys, "teams[0]")

    def test_roster_missing_beside_the_assignment(self, rostered, capsys):
        (rostered / "roster.txt").unlink()
        self.expect(rostered, capsys, "roster.txt is missing")

    def test_public_record_alone_needs_no_roster(self, rostered, capsys):
        (rostered / "roster.txt").unlink()
        (rostered / "assignment.json").unlink()
        assert run(rostered, capsys)[0] == 0

    def test_roster_without_a_digest(self, rostered, capsys):
        edit(rostered / "record.json", lambda r: r.update(roster_digest=None))
        self.expect(rostered, capsys, "no roster_digest")

    def test_lines_out_of_order(self, rostered, capsys):
        lines = (rostered / "roster.txt").read_text("utf-8").splitlines(keepends=True)
        self.forge(rostered, "".join([lines[1], lines[0], *lines[2:]]))
        self.expect(rostered, capsys, "roster.txt line 2", "out of order")

    @pytest.mark.parametrize("old, new", [("|1|2030-12-31|food", "|yes|2030-12-31|food"),
                                          ("|2030-12-31|food", "|2030-13-31|food"),
                                          ("T|T2|I03;I04", "T|T2|I04;I03"), ("T|T2|I03;I04", "T|T2|I03;;I04")])
    def test_malformed_lines(self, rostered, capsys, old, new):
        self.forge(rostered, (rostered / "roster.txt").read_text("utf-8").replace(old, new, 1))
        self.expect(rostered, capsys, "roster.txt line", "DRAW.md §8")

    def test_the_project_reads_back_what_the_verifier_accepts(self, rostered):
        text = (rostered / "roster.txt").read_text("utf-8")
        read = ssr1.parse_roster(text)
        assert ssr1.roster_text(ssr1.inspector_line(i.id, i.unit, i.active, i.expiry, i.specialties)
                                for i in read.inspectors) in text
        assert ssr1.H(text) == json.loads((rostered / "record.json").read_text("utf-8"))["roster_digest"]


class TestIndependence:
    def test_imports_only_the_standard_library(self):
        tree = ast.parse(VERIFIER.read_text("utf-8"))
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, "relative import"
                modules.add(node.module.split(".")[0])
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
                pytest.fail("dynamic import")
        assert modules and modules <= set(sys.stdlib_module_names) | {"__future__"}, modules

    def test_short_enough_to_read(self):
        # 250 until issue 17 added the frozen roster's check (DRAW.md §8: read roster.txt,
        # check its digest and that assignment.json's inputs are its own): about 50 lines.
        assert len(VERIFIER.read_text("utf-8").splitlines()) <= 310


bureau = st.lists(st.tuples(st.sampled_from(["U0", "U1", "U2"]), st.sets(st.sampled_from(["food", "drug"])),
                            st.booleans(), st.booleans()), min_size=2, max_size=10)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bureau, st.sampled_from(["all", "unit", "cross", "team"]), st.integers(0, 2),
       st.sets(st.tuples(st.integers(0, 9), st.sampled_from([i for i, _ in APPENDIX_POOL]))), st.booleans())
def test_agrees_with_the_drawing_code(tmp_path_factory, rows, mode, slack, pairs, roster):
    people = [Inspector(f"I{n:02d}", u, frozenset(s), active=a, qualified=q)
              for n, (u, s, a, q) in enumerate(rows)]
    ids = [p.id for p in people]
    teams = [Team(f"T{n}", (ids[n], ids[-1 - n])) for n in range(len(ids) // 2)]
    conflicts = [(f"I{n:02d}", o) for n, o in pairs if n < len(ids)]
    units = {oid: f"U{n % 3}" for n, (oid, _) in enumerate(APPENDIX_POOL + FOOD_POOL)}
    directory = tmp_path_factory.mktemp("batch")
    try:
        export(directory, STRATA, people=people, mode=mode, teams=teams, units=units,
               conflicts=conflicts, slack=slack, roster=roster)
    except Exception as error:  # a draw that fails stores nothing: nothing to verify
        assert type(error).__name__ == "DrawFailure"
        return
    assert verifier.main([str(directory)]) == 0


def test_shuangsui_verify_runs_the_same_check(batch, capsys):
    from bot.cli import main as shuangsui

    assert shuangsui(["verify", str(batch)]) == 0
    assert capsys.readouterr().out.startswith("SSR-1 OK")
    edit(batch / "record.json", lambda record: record.update(secret="0" * 64))
    assert shuangsui(["verify", str(batch)]) == 1
