"""Secrets sealed at rest with Fernet: the draw secret until the draw reveals it
(DRAW.md §1), and conflict declarations — why an inspector has a conflict of interest
with an object — in their columns, the import history and the audit log (the pair
itself, inspector and object, stays plain: every draw reads it).

A ``Sealer`` holds ``[security] keys``: the first key seals, every key opens
(MultiFernet). To rotate, put a new key first, keep the old ones, run ``shuangsui keys
rotate`` (``rotate`` / ``reseal_text`` over every sealed value), then drop the old keys.

The app and the CLI build one ``Sealer`` from the configuration and hand it to storage
with the engine: ``storage.db.make_engine(url, sealer=…)`` attaches it to the engine's
dialect, which is what a ``SealedText`` column is given when it binds or reads a value,
and ``sealer_of(session)`` finds it again for the code that seals by hand (publishing,
the draw, recusal, the import history, key rotation). Nothing here is process-wide:
two engines with different keys live side by side.

No key configured (one policy, here): a secret that must be sealed (the draw secret)
cannot be sealed or opened — ``SealingError`` says how to configure a key; a text kept
at rest (a declaration) is stored as it is, said once per sealer in the log, and one
stored sealed cannot be opened (``UnreadableValue``). A text stored without the
``sealed:`` prefix (written before sealing, or without a key) is read as it is and
sealed at its next write or rotation. No key and no plaintext ever reaches a log line
or an exception message.

Every text is sealed when written, whatever it looks like (issue 17): a declaration
someone typed as ``sealed:x`` is a text like any other, never taken for a sealed value
(it would be stored as it is and could not be read back, breaking every later read of
its rows). Without a key such a text is stored behind ``plain:`` (``plain:sealed:x``)
and read back as typed. The one way to store a value as already sealed is ``Sealed``:
a sealed value read raw from one sealed place and copied into another, by the program.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from weakref import WeakKeyDictionary

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator
from sqlmodel import AutoString

from bot.texts import say

log = logging.getLogger(__name__)

PREFIX = "sealed:"  # marks a text kept sealed at rest
PLAIN = "plain:"  # without a key: marks a text kept as it is that would otherwise read as marked

Key = str | SecretStr


class SealingError(Exception):
    """No key configured, a malformed key, or a token no configured key opens."""


class UnreadableValue(SealingError):
    """A text stored sealed that no configured key opens (a key was dropped too early)."""


class Sealed(str):
    """A value already sealed (``sealed:`` and a token), read raw from a sealed place, to be
    copied as it is into another: for the program's own copies only, never for a text
    someone typed (that is sealed like any other)."""

    def __new__(cls, value: str) -> Sealed:
        if not isinstance(value, str) or not value.startswith(PREFIX):
            raise ValueError("not a sealed value")
        return super().__new__(cls, value)


def _looks_marked(value: str) -> bool:
    """Whether a text kept as it is would be read as marked: ``sealed:…`` behind any ``plain:``."""
    while value.startswith(PLAIN):
        value = value[len(PLAIN):]
    return value.startswith(PREFIX)


def new_key() -> str:
    """A fresh Fernet key (44 url-safe base64 characters)."""
    return Fernet.generate_key().decode("ascii")


class Sealer:
    """``[security] keys``, ready to use: the first seals, every key opens.

    Built from the keys as configured (plain or ``SecretStr``; one key alone is taken
    whole, not letter by letter). A malformed key is named by its position only. Two
    sealers holding the same keys are equal (one engine per database and keys)."""

    def __init__(self, keys: Sequence[Key] | Key = ()) -> None:
        if isinstance(keys, str | SecretStr):
            keys = [keys]
        values = []
        for position, key in enumerate(keys, start=1):
            value = key.get_secret_value() if isinstance(key, SecretStr) else key
            try:
                value = value.strip()
                Fernet(value)
            except (ValueError, TypeError, AttributeError):
                raise SealingError(say("sealing", "bad_key", position=position, count=len(keys))) from None
            values.append(value)
        self._keys = tuple(values)
        self._fernet = MultiFernet([Fernet(value) for value in values]) if values else None
        self._warned = False

    @property
    def keyed(self) -> bool:
        """Whether any key is configured."""
        return self._fernet is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sealer) and other._keys == self._keys

    def __hash__(self) -> int:
        return hash(self._keys)

    def __repr__(self) -> str:  # never the keys themselves
        return f"Sealer({len(self._keys)} keys)"

    # --- Secrets: sealed, or refused ------------------------------------------------------

    def seal(self, plaintext: str) -> str:
        """Encrypt ``plaintext`` (UTF-8) under the first key; the token is ASCII."""
        return self._multi().encrypt(plaintext.encode("utf-8")).decode("ascii")

    def unseal(self, token: str) -> str:
        """Decrypt a token sealed under any of the keys."""
        multi = self._multi()
        try:
            return multi.decrypt(_token_bytes(token)).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError):
            raise SealingError(say("sealing", "unknown_key")) from None

    def rotate(self, token: str) -> str:
        """Re-seal a token (opened by any of the keys) under the first key."""
        multi = self._multi()
        try:
            return multi.rotate(_token_bytes(token)).decode("ascii")
        except InvalidToken:
            raise SealingError(say("sealing", "unknown_key")) from None

    def _multi(self) -> MultiFernet:
        if self._fernet is None:
            raise SealingError(say("sealing", "no_keys"))
        return self._fernet

    # --- Texts at rest: ``sealed:`` and a token, or as they are without a key ----------------

    def seal_text(self, value: str | None) -> str | None:
        """A text as kept at rest: sealed under the first key, whatever it looks like (a
        text typed as ``sealed:…`` too); only a ``Sealed`` copy is kept as it is."""
        if value is None or value == "":
            return value
        if isinstance(value, Sealed):
            return str(value)
        if self._fernet is None:
            if not self._warned:
                self._warned = True
                log.warning("no [security] keys configured: conflict declarations are stored unencrypted")
            return PLAIN + value if _looks_marked(value) else value
        return PREFIX + self.seal(value)

    def open_text(self, value: str | None) -> str | None:
        """A text kept at rest, opened (one stored unsealed is read as it is)."""
        if value is None:
            return value
        if value.startswith(PLAIN) and _looks_marked(value):  # kept as it is without a key
            return value[len(PLAIN):]
        if not value.startswith(PREFIX):
            return value
        try:
            return self.unseal(value[len(PREFIX):])
        except SealingError as exc:
            raise UnreadableValue(str(exc)) from None

    def reseal_text(self, value: str | None) -> str | None:
        """A text kept at rest, sealed again under the current first key (a plain one gets sealed)."""
        return self.seal_text(self.open_text(value))


def _token_bytes(token: str) -> bytes:
    try:
        return token.encode("ascii")
    except (UnicodeEncodeError, AttributeError):  # not a Fernet token at all
        raise SealingError(say("sealing", "unknown_key")) from None


# --- The sealer of an engine -------------------------------------------------------------------

# Keyed by the engine's dialect: every connection, session and ``execution_options`` copy
# of the engine shares it, and it is what a TypeDecorator is handed.
_SEALERS: WeakKeyDictionary[Dialect, Sealer] = WeakKeyDictionary()


def attach(engine: Engine, sealer: Sealer) -> None:
    """Make ``sealer`` the one ``engine``'s sealed texts and secrets use (``make_engine`` does)."""
    _SEALERS[engine.dialect] = sealer


def sealer_of(bind: Session | Connection | Engine | Dialect) -> Sealer:
    """The sealer attached to the engine behind ``bind``."""
    if isinstance(bind, Session):
        bind = bind.get_bind()
    dialect = bind if isinstance(bind, Dialect) else bind.dialect
    try:
        return _SEALERS[dialect]
    except KeyError:
        raise LookupError("this engine was not made by storage.db.make_engine: it has no sealer") from None


class SealedText(TypeDecorator):
    """Text sealed at rest by the engine's sealer; the database column stays a plain string column."""

    impl = AutoString
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return sealer_of(dialect).seal_text(value)

    def process_result_value(self, value, dialect):
        return sealer_of(dialect).open_text(value)


# --- The demo's key ------------------------------------------------------------------------------


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
