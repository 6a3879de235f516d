"""The server's public pages, rendered once per change of the data (issue 17 item 13).

What the pages show changes only with an audited write (a publication, draw, approval,
correction, import, plan change: each appends to the audit log) or a new anchor. So the
*generation* of the data is (the audit head's seq, the latest anchor's id): two primary
key maxima, read in one query at most every ``CHECK_SECONDS``. A rendered page or feed is
kept until the generation moves; the search index (bot.public.search) likewise.

When the check is due, one request makes it (in the public executor); the others go on
being served the kept file meanwhile, so a busy second does not send every request of that
moment to the executor at once (which would answer 503 beyond its queue); a check that
never ends (its request refused as busy) is made again after ``CHECK_WAIT``."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from bot.public.search import SearchIndex
from bot.public.site import File, Site
from bot.settings import Settings
from storage.db import reading
from storage.models import AuditAnchor, AuditEntry

CHECK_SECONDS = 1.0  # how stale a page may be after a change (the pages say max-age=60 anyway)
CHECK_WAIT = 10.0  # a check not done by then (refused as busy, stuck) is made again by the next request
MAX_FILES = 4096  # pages and feeds kept, least recently used dropped first
UNCACHED = frozenset({"search.html"})  # one entry per query: searched in the kept index instead

_GENERATION = select(select(func.max(AuditEntry.seq)).scalar_subquery(),
                     select(func.max(AuditAnchor.id)).scalar_subquery())


def generation(session: Session) -> tuple[int | None, int | None]:
    row = session.execute(_GENERATION).one()
    return row[0], row[1]


class PublicCache:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings
        self.lock = threading.Lock()
        self.generation: tuple[int | None, int | None] | None = None
        self.checked = float("-inf")
        self.checking = float("-inf")  # when a request began re-reading the generation (see ``fresh``)
        self.files: OrderedDict[str, File] = OrderedDict()
        self.index: SearchIndex | None = None

    def fresh(self, path: str) -> File | None:
        """A kept file, when the generation was checked within CHECK_SECONDS or another
        request is checking it now (no query at all); None: render it (``render``)."""
        if path in UNCACHED:
            return None
        with self.lock:
            found = self.files.get(path)
            if found is None:
                return None
            now = time.monotonic()
            if now - self.checked >= CHECK_SECONDS and now - self.checking >= CHECK_WAIT:
                self.checking = now  # this request checks; ``render`` clears the mark
                return None
            self.files.move_to_end(path)
            return found

    def render(self, path: str, query: dict[str, str]) -> File | None:
        """The file at ``path``: kept, or rendered and kept (in a worker thread)."""
        try:
            return self._render(path, query)
        finally:
            with self.lock:
                self.checking = float("-inf")

    def _render(self, path: str, query: dict[str, str]) -> File | None:
        with reading(self.engine) as session:
            # Read first, in the rendering session: what is rendered is at least this generation.
            now = generation(session)
            with self.lock:
                if now != self.generation:
                    self.files.clear()
                    self.index = None
                    self.generation = now
                self.checked = time.monotonic()
                kept = self.files.get(path) if path not in UNCACHED else None
            if kept is not None:
                return kept
            site = Site(session, self.settings, search_index=lambda: self._index(session, now))
            found = site.get(path, query)
            if found is not None and path not in UNCACHED:
                with self.lock:
                    if self.generation == now:
                        self.files[path] = found
                        while len(self.files) > MAX_FILES:
                            self.files.popitem(last=False)
            return found

    def _index(self, session: Session, now: tuple[int | None, int | None]) -> SearchIndex:
        with self.lock:
            if self.index is not None and self.generation == now:
                return self.index
        index = SearchIndex.load(session)
        with self.lock:
            if self.generation == now:
                self.index = index
        return index
