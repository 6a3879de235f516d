"""Search of the public pages (``search.html?q=``): objects whose name or credit code
contains the text, ignoring case (Unicode case folding), by name then id, at most
``disclosure.SEARCH_LIMIT``.

Neither SQLite nor PostgreSQL indexes an infix ``LIKE '%q%'`` without an extension (FTS5
trigram, pg_trgm), and prefix indexes would lose the searches people make (a word in the
middle of a name, the tail of a credit code). So the server reads ``(id, name)`` of every
object once per change of the data (bot.public.cache) into one folded text, and a search
is a C-speed substring scan of it that stops at the limit: no query and no database
connection per search."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from sqlmodel import Session, select

from storage.models import InspectionObject

_SEPARATORS = ("\n", "\t")


@dataclass(frozen=True)
class SearchIndex:
    objects: list[tuple[str, str]]  # (id, name), by name then id
    text: str  # one line per object: folded name, tab, folded id
    starts: list[int]  # where each line starts in ``text``

    @classmethod
    def load(cls, session: Session) -> SearchIndex:
        rows = session.exec(select(InspectionObject.id, InspectionObject.name)).all()
        objects = sorted(((i, n) for i, n in rows), key=lambda pair: (pair[1], pair[0]))
        lines = [f"{_fold(name)}\t{_fold(object_id)}" for object_id, name in objects]
        starts, at = [], 0
        for line in lines:
            starts.append(at)
            at += len(line) + 1
        return cls(objects, "\n".join(lines), starts)

    def find(self, text: str, limit: int) -> list[tuple[str, str]]:
        needle = _fold(text.strip())
        if not needle or any(s in needle for s in _SEPARATORS):
            return []
        found: list[tuple[str, str]] = []
        at = self.text.find(needle)
        while at >= 0 and len(found) < limit:
            line = bisect_right(self.starts, at) - 1
            found.append(self.objects[line])
            following = self.starts[line + 1] if line + 1 < len(self.starts) else len(self.text)
            at = self.text.find(needle, following)  # one hit per object
        return found


def _fold(value: str) -> str:
    return value.casefold().replace("\n", " ").replace("\t", " ")


__all__ = ["SearchIndex"]
