"""The roster frozen at publication (DRAW.md §8): every listed inspector, every listed team
and every conflict in force, as the exact lines hashed into ``roster_digest``.

Once the commitment is out, nobody — an administrator included — can change who may be
drawn to inspect what: the draw matches on these lines whatever the directory has become.
"""

from __future__ import annotations

import hmac
import zlib

from sqlalchemy import true
from sqlmodel import Session, select

from bot.refusal import Refusal
from bot.rules import ssr1
from storage.models import Batch, Conflict, Inspector, Team

FILE = "roster.txt"  # in ``batch export --internal`` (SPEC §6)


def freeze(session: Session) -> tuple[bytes, str]:
    """The directory's roster as it stands: ``(zlib-compressed lines, roster_digest)``.

    Raises:
        Refusal: ``bad_roster`` when an entry cannot be written as a roster line (an id or
            speciality with ``|``, ``;``, CR or LF: import refuses them).
    """
    try:
        lines = [ssr1.inspector_line(i.id, i.unit_id, i.active, i.certificate_expiry, i.specialties)
                 for i in session.exec(select(Inspector).where(Inspector.listed == true()))]
        lines += [ssr1.team_line(t.id, t.members) for t in session.exec(select(Team).where(Team.listed == true()))]
        lines += [ssr1.conflict_line(i, o) for i, o in session.exec(
            select(Conflict.inspector_id, Conflict.object_id).where(Conflict.listed == true()))]
    except ValueError as exc:
        raise Refusal("bad_roster", reason=str(exc)) from None
    text = ssr1.roster_text(lines)
    return zlib.compress(text.encode()), ssr1.H(text)


def text_of(batch: Batch) -> str | None:
    """The batch's frozen roster text, checked against its digest; None for a batch
    published before rosters existed.

    Raises:
        Refusal: ``roster_tampered`` when the stored lines no longer hash to the digest.
    """
    if batch.roster_digest is None:
        return None
    try:
        text = zlib.decompress(batch.roster or b"").decode()
    except (zlib.error, UnicodeDecodeError):
        text = None
    if text is None or not hmac.compare_digest(ssr1.H(text), batch.roster_digest):
        raise Refusal("roster_tampered", batch=batch.id)
    return text


def frozen(batch: Batch) -> ssr1.Roster | None:
    """The batch's frozen roster, read back and checked; None for a batch without one."""
    text = text_of(batch)
    if text is None:
        return None
    try:
        return ssr1.parse_roster(text)
    except ValueError:  # hashes to the digest but was never written by ``freeze``
        raise Refusal("roster_tampered", batch=batch.id) from None
