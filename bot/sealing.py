"""Secrets sealed at rest with Fernet (the draw secret until it is revealed, DRAW.md §1;
later conflict declarations).

Keys come from ``[security] keys`` (``SHUANGSUI__SECURITY__KEYS``): the first key seals,
every key unseals. To rotate, put a new key first, keep the old ones, run ``rotate``
over every sealed value, then drop the old keys. No key and no plaintext ever reaches
a log line or an exception message.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from bot.texts import say

if TYPE_CHECKING:
    from bot.settings import Settings

Key = str | SecretStr


class SealingError(Exception):
    """No key configured, a malformed key, or a token no configured key opens."""


def new_key() -> str:
    """A fresh Fernet key (44 url-safe base64 characters)."""
    return Fernet.generate_key().decode("ascii")


def keys_of(settings: Settings) -> list[str]:
    """The plain key strings of ``[security] keys``, the sealing key first."""
    return [key.get_secret_value() for key in settings.security.keys]


def _multi(keys: Sequence[Key]) -> MultiFernet:
    if isinstance(keys, str | SecretStr):  # one key, not a sequence of characters
        keys = [keys]
    if not keys:
        raise SealingError(say("sealing", "no_keys"))
    fernets = []
    for position, key in enumerate(keys, start=1):
        value = key.get_secret_value() if isinstance(key, SecretStr) else key
        try:
            fernets.append(Fernet(value.strip()))
        except (ValueError, TypeError, AttributeError):
            raise SealingError(say("sealing", "bad_key", position=position, count=len(keys))) from None
    return MultiFernet(fernets)


def _token_bytes(token: str) -> bytes:
    try:
        return token.encode("ascii")
    except (UnicodeEncodeError, AttributeError):  # not a Fernet token at all
        raise SealingError(say("sealing", "unknown_key")) from None


def seal(plaintext: str, keys: Sequence[Key]) -> str:
    """Encrypt ``plaintext`` (UTF-8) under the first key; the token is ASCII."""
    return _multi(keys).encrypt(plaintext.encode("utf-8")).decode("ascii")


def unseal(token: str, keys: Sequence[Key]) -> str:
    """Decrypt a token sealed under any of ``keys``."""
    multi = _multi(keys)
    try:
        return multi.decrypt(_token_bytes(token)).decode("utf-8")
    except (InvalidToken, UnicodeDecodeError):
        raise SealingError(say("sealing", "unknown_key")) from None


def rotate(token: str, keys: Sequence[Key]) -> str:
    """Re-seal a token (opened by any of ``keys``) under the first key."""
    multi = _multi(keys)
    try:
        return multi.rotate(_token_bytes(token)).decode("ascii")
    except InvalidToken:
        raise SealingError(say("sealing", "unknown_key")) from None


def demo_key(path: Path) -> str:
    """The demo's own key: read from ``path``, or created there (mode 0600) on first use."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole to a private temporary file, then linked into place: another
        # process never sees a half-written key, and an existing file is never replaced.
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            os.fchmod(descriptor, 0o600)
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(new_key() + "\n")
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # made meanwhile by another process: use that one
        finally:
            os.unlink(temporary)
    key = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        Fernet(key)
    except ValueError:
        raise SealingError(say("sealing", "bad_demo_key", path=str(path))) from None
    return key
