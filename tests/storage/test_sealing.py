"""Secrets sealed at rest (storage/sealing.py): round trips, key rotation, and errors that
name the configuration but never a key or a plaintext; the sealer an engine carries."""

from __future__ import annotations

import logging
import os
import secrets
import stat

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bot.settings import load_settings
from storage.db import make_engine
from storage.sealing import PREFIX, Sealed, Sealer, SealingError, UnreadableValue, demo_key, new_key, sealer_of


def seal(plaintext: str, keys) -> str:
    return Sealer(keys).seal(plaintext)


def unseal(token: str, keys) -> str:
    return Sealer(keys).unseal(token)


def rotate(token: str, keys) -> str:
    return Sealer(keys).rotate(token)

#: What a sealed value may hold: the draw secret (DRAW.md §1) or a declaration in Chinese.
PLAINTEXTS = [
    secrets.token_hex(32),
    "与检查对象甲公司存在亲属关系（配偶任该公司法定代表人）——申请回避",
    "",
]

pytestmark = pytest.mark.usefixtures("clean_environment")  # no stray configuration (conftest.py)


def assert_not_in(error: BaseException, *hidden: str) -> None:
    """Neither the message, the repr nor a chained exception shows any of ``hidden``."""
    texts = [str(error), repr(error)]
    for linked in (error.__cause__, error.__context__):
        if linked is not None:
            texts += [str(linked), repr(linked)]
    for text in texts:
        for value in hidden:
            assert value not in text


def test_new_key_is_a_fresh_fernet_key():
    first, second = new_key(), new_key()
    assert first != second and len(first) == 44
    Fernet(first)


@pytest.mark.parametrize("plaintext", PLAINTEXTS)
def test_round_trip(plaintext):
    key = new_key()
    token = seal(plaintext, [key])
    assert isinstance(token, str) and token.isascii()
    assert plaintext not in token or plaintext == ""
    assert unseal(token, [key]) == plaintext
    assert seal(plaintext, [key]) != token  # a fresh IV each time


def test_the_first_key_seals_and_every_key_unseals():
    old, new = new_key(), new_key()
    token = seal(PLAINTEXTS[1], [new, old])
    assert unseal(token, [new]) == PLAINTEXTS[1]
    with pytest.raises(SealingError):
        unseal(token, [old])


def test_rotation():
    """Put a new key first, keep the old one: old tokens still open; ``rotate`` moves them
    to the new key, after which the old key can go."""
    old, new = new_key(), new_key()
    token = seal(PLAINTEXTS[0], [old])
    assert unseal(token, [new, old]) == PLAINTEXTS[0]

    rotated = rotate(token, [new, old])
    assert rotated != token
    assert unseal(rotated, [new]) == PLAINTEXTS[0]
    with pytest.raises(SealingError):
        unseal(rotated, [old])
    with pytest.raises(SealingError):
        unseal(token, [new])  # the old token needs the old key until it is rotated


def test_rotating_without_the_old_key_fails_cleanly():
    old, new = new_key(), new_key()
    token = seal(PLAINTEXTS[1], [old])
    with pytest.raises(SealingError) as caught:
        rotate(token, [new])
    assert "[security] keys" in str(caught.value)
    assert_not_in(caught.value, old, new, PLAINTEXTS[1])


@pytest.mark.parametrize("call", [
    lambda: seal(PLAINTEXTS[1], []),
    lambda: unseal("gAAAAA", []),
    lambda: rotate("gAAAAA", ()),
])
def test_no_keys_explains_how_to_configure_one(call):
    with pytest.raises(SealingError) as caught:
        call()
    message = str(caught.value)
    assert "[security] keys" in message and "SHUANGSUI__SECURITY__KEYS" in message
    assert 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"' in message
    assert_not_in(caught.value, PLAINTEXTS[1])


def test_a_token_no_key_opens_names_the_missing_key():
    sealer, other = new_key(), new_key()
    token = seal(PLAINTEXTS[1], [sealer])
    with pytest.raises(SealingError) as caught:
        unseal(token, [other])
    message = str(caught.value)
    assert "[security] keys" in message and "密钥" in message
    assert_not_in(caught.value, sealer, other, PLAINTEXTS[1])


@pytest.mark.parametrize("token", ["", "not a token", "封存的值", "gAAAAABnot-really-a-fernet-token=="])
def test_garbage_is_not_a_token(token):
    with pytest.raises(SealingError):
        unseal(token, [new_key()])


def test_tampered_token_is_refused():
    key = new_key()
    token = seal(PLAINTEXTS[0], [key])
    middle = len(token) // 2
    tampered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1:]
    with pytest.raises(SealingError) as caught:
        unseal(tampered, [key])
    assert_not_in(caught.value, key, PLAINTEXTS[0])


def test_a_malformed_key_is_named_by_position_only():
    good, bad = new_key(), "S3cr3t-but-not-a-fernet-key"
    with pytest.raises(SealingError) as caught:
        seal(PLAINTEXTS[1], [good, bad])
    assert "第 2 个" in str(caught.value)
    assert_not_in(caught.value, good, bad, PLAINTEXTS[1])


def test_nothing_secret_is_logged(caplog):
    old, new = new_key(), new_key()
    with caplog.at_level(logging.DEBUG):
        token = seal(PLAINTEXTS[1], [old])
        rotate(token, [new, old])
        unseal(token, [new, old])
        with pytest.raises(SealingError):
            unseal(token, [new])
    for value in (old, new, PLAINTEXTS[1]):
        assert value not in caplog.text


def test_a_sealer_of_the_settings_keys(tmp_path, monkeypatch):
    first, second = new_key(), new_key()
    monkeypatch.setenv("SHUANGSUI__SECURITY__KEYS", f'["{first}", "{second}"]')
    settings = load_settings()
    sealer = Sealer(settings.security.keys)
    assert sealer == Sealer([first, second]) and sealer != Sealer([second, first])
    assert hash(sealer) == hash(Sealer([first, second]))
    token = sealer.seal(PLAINTEXTS[1])
    assert unseal(token, [first]) == PLAINTEXTS[1]
    # Plain keys are accepted too, and a single key is not taken letter by letter.
    assert unseal(token, [first, second]) == PLAINTEXTS[1]
    assert unseal(token, first) == PLAINTEXTS[1]
    assert unseal(token, SecretStr(first)) == PLAINTEXTS[1]
    assert first not in repr(sealer) and second not in str(sealer)


def test_default_settings_make_a_sealer_without_keys():
    sealer = Sealer(load_settings().security.keys)
    assert not sealer.keyed and sealer == Sealer()
    with pytest.raises(SealingError, match=r"\[security\] keys"):
        sealer.seal("x")


def test_reading_the_settings_changes_no_sealer(monkeypatch):
    """Keys are read, never remembered: a sealer made before opens nothing sealed under them."""
    before = Sealer()
    key = new_key()
    monkeypatch.setenv("SHUANGSUI__SECURITY__KEYS", f'["{key}"]')
    load_settings()
    assert not before.keyed
    with pytest.raises(UnreadableValue):
        before.open_text(Sealer([key]).seal_text(PLAINTEXTS[1]))


# --- Texts kept at rest: ``sealed:`` and a token -------------------------------------------------


def test_texts_at_rest_are_marked_and_opened():
    old, new = new_key(), new_key()
    sealer = Sealer([old])
    kept = sealer.seal_text(PLAINTEXTS[1])
    assert kept.startswith(PREFIX) and PLAINTEXTS[1] not in kept
    assert sealer.seal_text(Sealed(kept)) == kept  # a copy of a sealed value is kept as it is
    assert sealer.open_text(kept) == PLAINTEXTS[1]
    assert sealer.open_text("written before sealing") == "written before sealing"
    assert [sealer.seal_text(v) for v in (None, "")] == [None, ""]
    rotated = Sealer([new, old]).reseal_text(kept)
    assert Sealer([new]).open_text(rotated) == PLAINTEXTS[1]
    assert Sealer([new]).reseal_text("plain").startswith(PREFIX)  # a plain one gets sealed
    with pytest.raises(UnreadableValue) as caught:
        Sealer([new]).open_text(kept)
    assert isinstance(caught.value, SealingError) and "[security] keys" in str(caught.value)
    assert_not_in(caught.value, old, new, PLAINTEXTS[1])


def test_without_a_key_texts_are_kept_as_they_are_said_once(caplog):
    sealer = Sealer()
    with caplog.at_level(logging.WARNING, logger="storage.sealing"):
        assert sealer.seal_text(PLAINTEXTS[1]) == PLAINTEXTS[1]
        assert sealer.seal_text("again") == "again"
    assert len(caplog.records) == 1 and PLAINTEXTS[1] not in caplog.text
    with pytest.raises(UnreadableValue, match=r"SHUANGSUI__SECURITY__KEYS"):
        sealer.open_text(Sealer([new_key()]).seal_text(PLAINTEXTS[1]))


LOOK_SEALED = ["sealed:x", PREFIX + Sealer([new_key()]).seal("其他密钥"), "plain:sealed:x", "plain:x", "plain:"]


def test_a_text_that_looks_sealed_is_sealed_like_any_other_and_reads_back_as_typed():
    """Issue 17 item 1: a declaration typed as ``sealed:x`` was stored as it is and then
    could not be read; with a key or without, every text reads back as it was typed."""
    keyed, unkeyed = Sealer([new_key()]), Sealer()
    for typed in LOOK_SEALED:
        kept = keyed.seal_text(typed)
        assert kept != typed and kept.startswith(PREFIX) and keyed.open_text(kept) == typed
        assert keyed.open_text(keyed.reseal_text(kept)) == typed
        assert unkeyed.open_text(unkeyed.seal_text(typed)) == typed
        assert keyed.open_text(unkeyed.seal_text(typed)) == typed  # kept without a key, read once there is one
        assert keyed.open_text(keyed.reseal_text(unkeyed.seal_text(typed))) == typed
    assert unkeyed.seal_text("sealed:x") == "plain:sealed:x"
    assert unkeyed.seal_text("plain:x") == "plain:x" == unkeyed.open_text("plain:x")  # nothing to mark
    assert keyed.open_text("plain:x") == "plain:x"  # stored plain before: read as it is
    with pytest.raises(ValueError):
        Sealed("typed by someone")


def test_an_engine_carries_its_own_sealer(tmp_path):
    """Two engines with other keys side by side; an engine made without one has no key."""
    sealer = Sealer([new_key()])
    mine = make_engine(f"sqlite:///{tmp_path / 'a.db'}", sealer=sealer)
    other = make_engine(f"sqlite:///{tmp_path / 'b.db'}", sealer=Sealer([new_key()]))
    plain = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        assert sealer_of(mine) is sealer and sealer_of(mine.execution_options(x=1)) is sealer
        assert sealer_of(other) != sealer and not sealer_of(plain).keyed
        with mine.connect() as connection:
            assert sealer_of(connection) is sealer
    finally:
        for engine in (mine, other, plain):
            engine.dispose()


# --- The demo's own key ----------------------------------------------------------------------


def test_demo_key_is_created_private_and_reused(tmp_path):
    path = tmp_path / "demo" / "nested" / "sealing.key"
    previous = os.umask(0)  # even with a permissive umask, the file is 0600
    try:
        key = demo_key(path)
    finally:
        os.umask(previous)
    Fernet(key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="ascii").strip() == key
    assert demo_key(path) == key
    assert os.listdir(path.parent) == ["sealing.key"]  # no temporary file left behind
    assert unseal(seal("演示", [demo_key(path)]), [key]) == "演示"


def test_demo_key_reads_an_existing_key(tmp_path):
    key = new_key()
    path = tmp_path / "sealing.key"
    path.write_text(key + "\n", encoding="ascii")
    assert demo_key(path) == key


def test_demo_key_refuses_a_file_holding_no_key(tmp_path):
    path = tmp_path / "sealing.key"
    path.write_text("S3cr3t-garbage\n", encoding="ascii")
    with pytest.raises(SealingError) as caught:
        demo_key(path)
    assert str(path) in str(caught.value)
    assert_not_in(caught.value, "S3cr3t-garbage")
