"""The public site: every page and file under ``/public/``, one path each, rendered the
same way for the server (``bot.public.routes``) and for the static export
(``bot.public.export``). Links are relative, so the exported files work offline.

Paths:

    index.html                      batches, downloads, search
    items.html                      the item list (事项清单)
    plans.html                      annual plans with their adjustments
    objects.html                    every object a draw selected, by name (the export's search)
    search.html?q=…                 search by name or credit code (server only)
    objects/<name>.html             an object's credit record (art. 21)
    batches/<id>.html               a batch's sampling plan, from its publication
    batches/<id>/draw.html          its draw record, from the draw: seed, selections, how to check
    batches/<id>/results.html       its published results
    batches/<id>/record.json        the SSR-1 record (SPEC §6)
    batches/<id>/pool-<name>.txt    the frozen pools
    results.csv, results.xlsx       every published result (bot.public.feeds)
    anchor.json, anchor.txt         the audit log's latest anchor (bot.public.anchors), once there is one
    verifier.py                     the standalone verifier (bot/verifier.py)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.resources import files

from sqlmodel import Session, col, select

from bot.public import anchors, disclosure, feeds
from bot.public.disclosure import object_page
from bot.public.followups import public_outcomes
from bot.public.search import SearchIndex
from bot.settings import Settings
from bot.texts import page
from storage.models import InspectionObject

HTML = "text/html; charset=utf-8"


@dataclass(frozen=True)
class File:
    path: str  # under /public/
    body: bytes
    content_type: str


class Site:
    """The public site over one database session."""

    def __init__(self, session: Session, settings: Settings, *, static: bool = False,
                 search_index: Callable[[], SearchIndex] | None = None) -> None:
        self.session, self.settings, self.static = session, settings, static
        self._search_index = search_index or (lambda: SearchIndex.load(session))
        self.timezone = settings.bureau.timezone
        self._plans: dict[str, disclosure.SamplingPlan | None] = {}

    def get(self, path: str, query: dict[str, str] | None = None) -> File | None:
        """The file at ``path``, or None when there is none (or it is not public yet)."""
        path = path or "index.html"
        fixed: dict[str, Callable[[], File | None]] = {
            "index.html": self.index, "items.html": self.items, "plans.html": self.plans,
            "objects.html": self.objects, "verifier.py": self.verifier, "results.csv": self.results_csv,
            "results.xlsx": self.results_xlsx, "anchor.json": self.anchor_json, "anchor.txt": self.anchor_txt,
        }
        if path in fixed:
            return fixed[path]()
        if path == "search.html" and not self.static:
            return self.search((query or {}).get("q", ""))
        parts = path.split("/")
        if len(parts) == 2 and parts[0] == "objects" and parts[1].endswith(".html"):
            return self.credit_record(parts[1].removesuffix(".html"))
        if len(parts) == 2 and parts[0] == "batches" and parts[1].endswith(".html"):
            return self.sampling_plan(parts[1].removesuffix(".html"))
        if len(parts) == 3 and parts[0] == "batches":
            return self.draw_file(parts[1], parts[2])
        return None

    def everything(self) -> Iterator[File]:
        """Every file of the site, for a static export."""
        for found in self._listed():
            assert found is not None  # every page listed is public
            yield found

    def _listed(self) -> Iterator[File | None]:
        for name in ("index.html", "items.html", "plans.html", "objects.html", "verifier.py", "results.csv",
                     "results.xlsx"):
            yield self.get(name)
        if anchors.latest(self.session) is not None:
            yield self.anchor_json()
            yield self.anchor_txt()
        for batch in disclosure.batches(self.session):
            yield self.sampling_plan(batch.id)
            if batch.drawn_at is not None:
                for name in ("draw.html", "results.html", "record.json",
                             *disclosure.pool_files(self.session, batch.id)):
                    yield self.draw_file(batch.id, name)
        for object_id, _ in disclosure.drawn_objects(self.session):
            yield self.credit_record(object_page(object_id))

    def paths(self) -> int:
        """How many files ``everything`` yields (for a progress bar)."""
        drawn = [b for b in disclosure.batches(self.session) if b.drawn_at is not None]
        pools = sum(len(disclosure.pool_files(self.session, b.id)) for b in drawn)
        fixed = 7 + (2 if anchors.latest(self.session) is not None else 0)
        return fixed + len(disclosure.batches(self.session)) + 3 * len(drawn) + pools + len(
            disclosure.drawn_objects(self.session))

    # ----- pages -------------------------------------------------------------------------------------------------

    def index(self) -> File:
        return self._html("index.html", "public/index.html.j2", batches=disclosure.batches(self.session),
                          anchor=anchors.latest(self.session))

    def items(self) -> File:
        return self._html("items.html", "public/items.html.j2", items=disclosure.items(self.session))

    def plans(self) -> File:
        return self._html("plans.html", "public/plans.html.j2", plans=disclosure.plans(self.session))

    def objects(self) -> File:
        return self._html("objects.html", "public/objects.html.j2", objects=disclosure.drawn_objects(self.session))

    def search(self, text: str) -> File:
        return self._html("search.html", "public/search.html.j2", text=text.strip()[:100],
                          found=self._search_index().find(text[:100], disclosure.SEARCH_LIMIT),
                          limit=disclosure.SEARCH_LIMIT)

    def credit_record(self, name: str) -> File | None:
        object_id = self._object_id(name)
        found = disclosure.credit_record(self.session, object_id, self.timezone) if object_id else None
        if found is None:
            return None
        obj, results, batches = found
        return self._html(f"objects/{name}.html", "public/object.html.j2", obj=obj, results=results,
                          batches=batches, follow_ups=public_outcomes(self.session, obj.id))

    def sampling_plan(self, batch_id: str) -> File | None:
        plan = self._plan(batch_id)
        if plan is None:
            return None
        return self._html(f"batches/{batch_id}.html", "public/plan.html.j2", plan=plan)

    def draw_file(self, batch_id: str, name: str) -> File | None:
        plan = self._plan(batch_id)
        if plan is None or plan.record is None:
            return None
        path = f"batches/{batch_id}/{name}"
        if name == "draw.html":
            return self._html(path, "public/draw.html.j2", plan=plan)
        if name == "results.html":
            return self._html(path, "public/results.html.j2", plan=plan)
        if name == "record.json":
            body = json.dumps(plan.record, ensure_ascii=False, indent=1) + "\n"
            return File(path, body.encode(), "application/json; charset=utf-8")
        pool = disclosure.pool_files(self.session, batch_id).get(name)
        return File(path, pool, "text/plain; charset=utf-8") if pool is not None else None

    # ----- downloads ---------------------------------------------------------------------------------------------

    def verifier(self) -> File:
        return File("verifier.py", files("bot").joinpath("verifier.py").read_bytes(), "text/x-python; charset=utf-8")

    def results_csv(self) -> File:
        return File("results.csv", feeds.to_csv(disclosure.published_results(self.session, self.timezone)),
                    "text/csv; charset=utf-8")

    def results_xlsx(self) -> File:
        return File("results.xlsx", feeds.to_xlsx(disclosure.published_results(self.session, self.timezone)),
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    def anchor_json(self) -> File | None:
        found = anchors.latest(self.session)
        return File("anchor.json", anchors.as_json(found), "application/json; charset=utf-8") if found else None

    def anchor_txt(self) -> File | None:
        found = anchors.latest(self.session)
        return File("anchor.txt", anchors.as_text(found), "text/plain; charset=utf-8") if found else None

    # ----- helpers -----------------------------------------------------------------------------------------------

    def _html(self, path: str, template: str, **values: object) -> File:
        root = "../" * path.count("/")
        html = page(template, root=root, static=self.static, bureau=self.settings.bureau.name,
                    object_page=object_page, local_day=lambda instant: disclosure.local_day(instant, self.timezone),
                    **values)
        return File(path, html.encode(), HTML)

    def _plan(self, batch_id: str) -> disclosure.SamplingPlan | None:
        if batch_id not in self._plans:
            self._plans[batch_id] = disclosure.sampling_plan(self.session, batch_id, self.timezone)
        return self._plans[batch_id]

    def _object_id(self, name: str) -> str | None:
        """The object a page name stands for: its id, or for a digest name (``o-…``) the object
        whose stored ``page_key`` it is (an index lookup, never a hash of every id)."""
        if not name.startswith("o-") or self.session.get(InspectionObject, name) is not None:
            return name
        return self.session.exec(select(InspectionObject.id).where(col(InspectionObject.page_key) == name)
                                 .limit(1)).first()
