"""``shuangsui public export``: the public site as static files, for upload to the
bureau's website or the national disclosure system; the links work offline."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy import Engine

from bot.public.site import Site
from bot.settings import Settings
from storage.db import reading


class NotEmpty(Exception):
    """The output folder holds other files: nothing is overwritten."""


def export_site(engine: Engine, settings: Settings, out: Path,
                progress: Callable[..., Iterable] = lambda files, **_: files) -> Counter:
    """Write every public file under ``out``; returns bytes written per file kind."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise NotEmpty(str(out))
    root = out.resolve()
    written: Counter = Counter()
    with reading(engine) as session:
        site = Site(session, settings, static=True)
        for file in progress(site.everything(), total=site.paths()):
            target = (root / file.path).resolve()
            if root not in target.parents:  # a name that would climb out of the folder
                raise ValueError(f"unsafe path {file.path!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.body)
            written[file.path.rsplit(".", 1)[-1]] += len(file.body)
    return written
