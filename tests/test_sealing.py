"""Secrets sealed at rest (bot/sealing.py): round trips, key rotation, and errors that
name the configuration but never a key or a plaintext."""

from __future__ import annotations

import logging
import os
import secrets
import stat

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bot.sealing import SealingError, demo_key, keys_of, new_key, rotate, seal, unseal
from bot.settings import ENV_PREFIX, load_settings

#: What a sealed value may hold: the draw secret (DRAW.md §1) or a declaration in Chinese.
PLAINTEXTS = [
    secrets.token_hex(32),
    "与检查对象甲公司存在亲属关系（配偶任该公司法定代表人）——申请回避",
    "",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX) or name.upper() == "SHUANGSUI_CONFIG":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


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


def test_keys_of_settings(tmp_path, monkeypatch):
    first, second = new_key(), new_key()
    monkeypatch.setenv("SHUANGSUI__SECURITY__KEYS", f'["{first}", "{second}"]')
    settings = load_settings()
    assert keys_of(settings) == [first, second]
    token = seal(PLAINTEXTS[1], keys_of(settings))
    assert unseal(token, [first]) == PLAINTEXTS[1]
    # The SecretStr list itself is accepted too, and a single key is not taken letter by letter.
    assert unseal(token, settings.security.keys) == PLAINTEXTS[1]
    assert unseal(token, first) == PLAINTEXTS[1]
    assert unseal(token, [SecretStr(first)]) == PLAINTEXTS[1]


def test_keys_of_default_settings_is_empty():
    settings = load_settings()
    assert keys_of(settings) == []
    with pytest.raises(SealingError, match=r"\[security\] keys"):
        seal("x", keys_of(settings))


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
