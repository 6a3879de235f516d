"""``shuangsui demo``: the product on embedded SQLite with a synthetic district."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import Engine, func
from sqlmodel import col, select

from bot.settings import Settings, UnitRoles
from bot.terminal import err, progress
from bot.texts import say

DEMO_LEAD = "U-XYS"  # the synthetic district's 信用监管室
SEED_ORDER = ("units", "items", "inspectors", "teams", "objects", "conflicts")


def run(settings: Settings, data_dir: Path, *, serve_after: bool = True, objects: int = 30_000) -> int:
    """Upgrade the demo database, seed the district on first run, then serve."""
    from bot.app import serve
    from bot.console.routes import exposed
    from storage import schema
    from storage.db import engine_for
    from storage.sealing import Sealer

    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{(data_dir / 'shuangsui-demo.db').resolve()}"
    settings = demo_settings(settings, data_dir, url)
    engine = engine_for(url, Sealer(settings.security.keys))  # the app serving it after finds the same
    schema.upgrade(engine)
    if not _seeded(engine):
        if (code := _seed(engine, data_dir / "district", objects)) != 0:
            return code
    else:
        err(say("demo", "already_seeded", path=str(data_dir)))
    settings = demo_people(settings, engine)
    if serve_after:
        if problem := exposed(settings):  # the console acts as anyone: never beyond loopback
            err(problem)
            return 2
        serve(settings)  # which prints the console's address with this start's token
    return 0


def demo_people(settings: Settings, engine: Engine) -> Settings:
    """The console on, and people to play: an admin, a supervisor, and per unit its
    approver, its lead (offices) and its accountability contact (stations) — unless the
    configuration names its own."""
    from storage.models import Unit

    update: dict[str, object] = {"console": settings.console.model_copy(update={"enabled": True})}
    roles = settings.roles
    if not roles.admins and not roles.units:
        with engine.connect() as connection:
            units = connection.execute(select(Unit.id, Unit.kind).order_by(col(Unit.id))).all()
        update["roles"] = roles.model_copy(update={
            "admins": ["console:admin"], "supervisors": ["console:leader"],
            "units": {unit_id: UnitRoles(approvers=[f"console:approver-{unit_id}"],
                                         leads=[f"console:lead-{unit_id}"] if kind == "office" else [],
                                         accountability=[f"console:contact-{unit_id}"] if kind != "office" else [])
                      for unit_id, kind in units}})
    return settings.model_copy(update=update)


def demo_settings(settings: Settings, data_dir: Path, url: str) -> Settings:
    """The demo's own database, its own sealing key, and the synthetic 信用监管室 as lead."""
    from storage.sealing import demo_key

    update: dict[str, object] = {"database": settings.database.model_copy(update={"url": url})}
    if not settings.security.keys:
        key = demo_key(data_dir / "sealing.key")
        update["security"] = settings.security.model_copy(update={"keys": [SecretStr(key)]})
    if not settings.bureau.default_lead:
        update["bureau"] = settings.bureau.model_copy(update={"default_lead": DEMO_LEAD})
    return settings.model_copy(update=update)


def _seeded(engine: Engine) -> bool:
    from storage.models import Unit

    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(Unit)).scalar_one() > 0


def _seed(engine: Engine, district_dir: Path, objects: int) -> int:
    from bot.synthetic_district import generate_district
    from storage.importing import import_file

    err(say("demo", "generating", objects=objects))
    files = generate_district(district_dir, objects=objects)
    for kind in SEED_ORDER:
        outcome = import_file(engine, kind, files[kind], actor="demo", progress=progress)
        if not outcome.ok:  # the generator and the importer disagree: a bug, say so plainly
            for problem in outcome.problems[:10]:
                err(say("import", "problem", line=problem.line, reason=problem.reason))
            return 1
        err(say("demo", "imported", kind=kind, count=outcome.counts()["added"]))
    return 0

