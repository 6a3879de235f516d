"""Evidence bytes, stored once by their SHA-256 and linked to tasks."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from storage.models import Evidence, EvidenceBlob


def store(session: Session, data: bytes, content_type: str) -> str:
    """Keep ``data`` (once, whoever sends it again) and return its SHA-256."""
    digest = hashlib.sha256(data).hexdigest()
    insert_ = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert_(EvidenceBlob).values(sha256=digest, data=data, size=len(data), content_type=content_type)
                    .on_conflict_do_nothing(index_elements=["sha256"]))
    return digest


LOCATION_TYPE = "application/json"  # a location's record, as stored


def location_record(latitude: float, longitude: float, label: str, at: datetime) -> bytes:
    """What a location sent as evidence is stored as: coordinates, label, time, as JSON
    (one canonical form, so the same location at the same time is the same record)."""
    return json.dumps({"type": "location", "latitude": latitude, "longitude": longitude, "label": label,
                       "at": at.isoformat()}, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def count(session: Session, task_id: int) -> int:
    return session.exec(select(func.count()).select_from(Evidence).where(Evidence.task_id == task_id)).one()


def load(session: Session, digest: str) -> tuple[bytes, str] | None:
    """The bytes stored under ``digest`` and their content type."""
    blob = session.get(EvidenceBlob, digest)
    return (blob.data, blob.content_type) if blob else None
