"""The synthetic district: deterministic, self-consistent, importable (SPEC §3)."""

import csv
from collections import Counter
from pathlib import Path

import pytest

from bot.synthetic_district import generate_district, uscc, write_objects

# Copied from SPEC §3 on purpose: the generator must match the contract, not itself.
SPEC_HEADERS = {
    "units": "id,name,kind",
    "items": "code,name,legal_basis,specialty,method",
    "inspectors": "id,name,unit,certificate_no,certificate_expiry,specialties,active,"
                  "wecom_userid,dingtalk_userid",
    "teams": "id,members",
    "objects": "id,name,kind,industry,region,unit,address,status,complaints,abnormal,"
               "serious_violation,key_sector",
    "conflicts": "inspector_id,object_id,reason",
}
ART3_KINDS = {
    "有限责任公司", "股份有限公司", "非公司企业法人", "合伙企业", "个人独资企业",
    "农民专业合作社", "分支机构", "个体工商户", "外国(地区)企业", "产品", "项目", "行为",
}
BOOLEANS = {"true", "false"}


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def district(tmp_path_factory) -> dict[str, Path]:
    return generate_district(tmp_path_factory.mktemp("district"), seed=7, objects=3000)


@pytest.fixture(scope="module")
def rows(district) -> dict[str, list[dict[str, str]]]:
    return {kind: read(path) for kind, path in district.items()}


def test_files_in_import_order_with_spec_headers(district):
    assert list(district) == ["units", "items", "inspectors", "teams", "objects", "conflicts"]
    for kind, path in district.items():
        assert path.name == f"{kind}.csv"
        header = path.read_text(encoding="utf-8").splitlines()[0]
        assert header == SPEC_HEADERS[kind]


def test_same_seed_same_bytes_other_seed_other_bytes(district, tmp_path):
    again = generate_district(tmp_path / "a", seed=7, objects=3000)
    other = generate_district(tmp_path / "b", seed=8, objects=3000)
    for kind, path in district.items():
        assert again[kind].read_bytes() == path.read_bytes(), kind
    assert other["objects"].read_bytes() != district["objects"].read_bytes()
    assert other["inspectors"].read_bytes() != district["inspectors"].read_bytes()


def test_write_objects_alone_matches_the_district(district, tmp_path):
    alone = tmp_path / "objects.csv"
    write_objects(alone, 3000, seed=7)
    assert alone.read_bytes() == district["objects"].read_bytes()


def test_a_prefix_of_a_bigger_file_is_the_smaller_file(district, tmp_path):
    bigger = tmp_path / "objects.csv"
    write_objects(bigger, 4000, seed=7)
    small = district["objects"].read_text(encoding="utf-8").splitlines()
    assert bigger.read_text(encoding="utf-8").splitlines()[: len(small)] == small


def test_ids_unique_and_clean(rows):
    for kind, key in [("units", "id"), ("items", "code"), ("inspectors", "id"),
                      ("teams", "id"), ("objects", "id")]:
        ids = [row[key] for row in rows[kind]]
        assert len(ids) == len(set(ids)), kind
        for value in ids:
            assert value and value == value.strip(), (kind, value)
            assert "|" not in value and "\n" not in value and "\r" not in value, (kind, value)
    pairs = [(c["inspector_id"], c["object_id"]) for c in rows["conflicts"]]
    assert len(pairs) == len(set(pairs))


def test_references_resolve(rows):
    units = {u["id"]: u["kind"] for u in rows["units"]}
    inspectors = {i["id"] for i in rows["inspectors"]}
    objects = {o["id"] for o in rows["objects"]}
    assert all(i["unit"] in units for i in rows["inspectors"])
    assert all(units[o["unit"]] == "station" for o in rows["objects"])
    for team in rows["teams"]:
        members = team["members"].split(";")
        assert 2 <= len(members) <= 3 and len(set(members)) == len(members)
        assert set(members) <= inspectors
    assert 20 <= len(rows["conflicts"]) <= 60
    for conflict in rows["conflicts"]:
        assert conflict["inspector_id"] in inspectors
        assert conflict["object_id"] in objects
        assert conflict["reason"]


def test_units_and_items(rows):
    kinds = Counter(u["kind"] for u in rows["units"])
    assert kinds["office"] >= 5 and kinds["station"] >= 6 and kinds["brigade"] == 1
    assert "信用监管室" in {u["name"] for u in rows["units"]}
    assert all(u["id"].isascii() and len(u["id"]) <= 8 for u in rows["units"])
    assert len(rows["items"]) >= 15
    assert {i["method"] for i in rows["items"]} == {"书面", "实地", "网络"}
    assert all(i["legal_basis"].startswith("《") for i in rows["items"])
    assert {i["specialty"] for i in rows["items"]} >= {"", "食品", "特种设备", "药品"}


def test_inspectors_realistic(rows):
    people = rows["inspectors"]
    assert len(people) == 120
    assert all(p["active"] in BOOLEANS for p in people)
    assert all(len(p["certificate_expiry"]) == 10 for p in people)
    expired = [p for p in people if p["certificate_expiry"] < "2026-01-01"]
    inactive = [p for p in people if p["active"] == "false"]
    assert 1 <= len(expired) <= 15 and 1 <= len(inactive) <= 15
    assert sum(p["certificate_expiry"] >= "2027-01-01" for p in people) > 100
    assert len({p["name"] for p in people}) == len(people)
    specialities = Counter(s for p in people for s in p["specialties"].split(";") if s)
    assert specialities["食品"] > 10 and specialities["特种设备"] > 3
    item_specialities = {i["specialty"] for i in rows["items"]} - {""}
    assert item_specialities <= set(specialities)
    wecom = [p["wecom_userid"] for p in people if p["wecom_userid"]]
    assert len(wecom) == len(set(wecom)) and all(w.isascii() for w in wecom)


def test_every_station_can_staff_a_small_random_draw(rows):
    qualified = Counter(p["unit"] for p in rows["inspectors"]
                        if p["active"] == "true" and p["certificate_expiry"] >= "2027-01-01")
    for unit in (u["id"] for u in rows["units"] if u["kind"] == "station"):
        assert qualified[unit] >= 2, unit


def test_objects_realistic_mix(rows):
    objects = rows["objects"]
    assert len(objects) == 3000
    kinds = Counter(o["kind"] for o in objects)
    assert set(kinds) <= ART3_KINDS and len(kinds) >= 8
    assert kinds.most_common(2)[0][0] == "个体工商户"
    assert kinds.most_common(2)[1][0] == "有限责任公司"
    non_market = [o for o in objects if o["kind"] in {"产品", "项目", "行为"}]
    assert 50 < len(non_market) < 600
    assert all(o["id"].startswith(f"P-{o['kind']}-") for o in non_market)
    market = [o for o in objects if o["kind"] not in {"产品", "项目", "行为"}]
    assert all(len(o["id"]) == 18 and o["id"][2:8] == "150602" for o in market)
    assert {o["status"] for o in objects} == {"active", "deregistered"}
    for flag in ("abnormal", "serious_violation", "key_sector"):
        assert {o[flag] for o in objects} <= BOOLEANS
        assert 0 < sum(o[flag] == "true" for o in objects) < len(objects) * 0.2, flag
    complaints = Counter(int(o["complaints"]) for o in objects)
    assert complaints[0] > len(objects) * 0.8 and max(complaints) <= 5
    assert len({o["region"] for o in objects}) >= 10
    assert len({o["industry"] for o in objects}) >= 10


def test_custom_jurisdiction_units(tmp_path):
    path = tmp_path / "objects.csv"
    write_objects(path, 200, seed=1, units=["S1", "S2"])
    assert {o["unit"] for o in read(path)} == {"S1", "S2"}


def test_sample_points_at_active_market_rows(tmp_path):
    path = tmp_path / "objects.csv"
    sample = write_objects(path, 500, seed=3)
    by_id = {o["id"]: o for o in read(path)}
    assert sample
    for object_id, unit in sample:
        assert by_id[object_id]["unit"] == unit and by_id[object_id]["status"] == "active"


def test_uscc_check_character():
    # Weights and alphabet of GB 32100-2015, checked against a published code.
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

    def check(code17: str) -> str:
        total = sum(alphabet.index(c) * w for c, w in zip(code17, weights))
        return alphabet[(31 - total % 31) % 31]

    assert check("91350100M000100Y4") == "3"
    codes = {uscc("92", serial) for serial in (0, 1, 30, 31, 961, 31**7 - 1)}
    assert len(codes) == 6
    assert all(check(code[:17]) == code[17] for code in codes)


def test_too_few_inspectors_refused(tmp_path):
    with pytest.raises(ValueError):
        generate_district(tmp_path, objects=10, inspectors=5)


def test_progress_reports_every_file(tmp_path):
    seen = []
    generate_district(tmp_path, objects=12_000, inspectors=30,
                      progress=lambda kind, done, total: seen.append((kind, done, total)))
    assert [k for k, _, _ in seen if k != "objects"] == [
        "units", "items", "inspectors", "teams", "conflicts"]
    assert ("objects", 10_000, 12_000) in seen and ("objects", 12_000, 12_000) in seen
