"""A small district for batch tests: two stations, an office, eight inspectors, 60 objects,
and an annual plan of its office (``PLANS``, imported by the tests that need one)."""

from __future__ import annotations

from pathlib import Path

from bot.settings import Settings
from storage.importing import import_file
from storage.sealing import new_key

UNITS = "id,name,kind\nU-XY,信用监管室,office\nS-DC,东城所,station\nS-XC,西城所,station\n"
ITEMS = ("code,name,legal_basis,specialty,method\n"
         "A01,企业公示信息检查,《企业信息公示暂行条例》第十四条,,书面\n"
         "A02,食品经营检查,《食品安全法》第八十七条,食品,实地\n"
         "A03,特种设备检查,《特种设备安全法》第五十七条,特种设备,实地\n")
INSPECTORS = "id,name,unit,certificate_no,certificate_expiry,specialties,active\n" + "".join(
    f"I{n:02d},检查员{n},{unit},C{n},2030-12-31,{spec},true\n"
    for n, (unit, spec) in enumerate([("S-DC", "食品"), ("S-DC", ""), ("S-DC", "特种设备"), ("S-DC", ""),
                                      ("S-XC", "食品"), ("S-XC", ""), ("S-XC", ""), ("S-XC", "特种设备")], start=1))
TEAMS = "id,members\nT1,I01;I02\nT2,I03;I04\nT3,I05;I06\n"
OBJECTS = "id,name,kind,industry,region,unit,complaints,abnormal\n" + "".join(
    f"9115060200000{n:05d},对象{n},有限责任公司,{'餐饮服务' if n % 2 else '批发零售'},东区,"
    f"{'S-DC' if n <= 30 else 'S-XC'},{n % 5},{'是' if n % 7 == 0 else '否'}\n" for n in range(1, 61))
# One annual plan of the office (art. 11), as ``shuangsui plans import`` reads it.
PLANS = ("year,office,name,items,ratio,frequency,scope,start,end\n"
         "2026,U-XY,餐饮企业年度抽查,A01;A02,10,1,行业=餐饮服务,2026-03-01,2026-12-31\n")


def seed_district(engine, directory: Path) -> None:
    for kind, text in (("units", UNITS), ("items", ITEMS), ("inspectors", INSPECTORS), ("teams", TEAMS),
                       ("objects", OBJECTS)):
        path = directory / f"{kind}.csv"
        path.write_text(text, encoding="utf-8")
        outcome = import_file(engine, kind, path, actor="test")
        assert outcome.ok, outcome.problems


def batch_settings(**draw) -> Settings:
    return Settings(security={"keys": [new_key()]}, bureau={"default_lead": "U-XY"}, draw=draw)
