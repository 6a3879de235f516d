"""Columns encrypted at rest (Fernet): conflict declarations — why an inspector has a
conflict of interest with an object — are sealed in the database, in its import history
and in the audit log; the pair itself (inspector, object) stays plain, since every draw
reads it.

A ``SealedText`` column seals on write and opens on read. The keys are ``[security]
keys`` (bot.settings registers them here when the configuration is read): the first
key of the newest configuration seals, every key seen opens, so a rotation (new key
first, old keys kept, then ``shuangsui keys rotate``) never makes a value unreadable.
A value stored without the ``sealed:`` prefix (written before sealing, or when no key
was configured) is read as it is and sealed at its next write or rotation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.types import TypeDecorator
from sqlmodel import AutoString

log = logging.getLogger(__name__)

PREFIX = "sealed:"
_keys: list[str] = []  # every key configured in this process, the sealing key first
_multi: MultiFernet | None = None
_warned: list[bool] = []  # said once per process


class UnreadableValue(Exception):
    """A sealed value that no configured key opens (a key was dropped too early)."""


def remember(keys: Sequence[str]) -> None:
    """Make ``keys`` (the first seals) the keys of this process; keys seen before still open."""
    global _multi
    if not keys:
        return
    ordered = list(dict.fromkeys([*keys, *_keys]))
    if ordered != _keys:
        _keys[:] = ordered
        _multi = MultiFernet([Fernet(k) for k in ordered])


def seal(value: str | None) -> str | None:
    if value is None or value == "" or value.startswith(PREFIX):
        return value
    if _multi is None:
        if not _warned:
            _warned.append(True)
            log.warning("no [security] keys configured: conflict declarations are stored unencrypted")
        return value
    return PREFIX + _multi.encrypt(value.encode("utf-8")).decode("ascii")


def unseal(value: str | None) -> str | None:
    if value is None or not value.startswith(PREFIX):
        return value
    if _multi is None:
        raise UnreadableValue("no [security] keys configured")
    try:
        return _multi.decrypt(value[len(PREFIX):].encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise UnreadableValue("no configured key opens this value") from None


def reseal(value: str | None) -> str | None:
    """The value sealed under the current first key (plain values get sealed)."""
    return seal(unseal(value))


class SealedText(TypeDecorator):
    """Text sealed at rest; the database column stays a plain string column."""

    impl = AutoString
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return seal(value)

    def process_result_value(self, value, dialect):
        return unseal(value)
