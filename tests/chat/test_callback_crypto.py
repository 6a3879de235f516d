"""WXBizMsgCrypt (bot/callback_crypto.py): the published WeCom and DingTalk vectors of PROTOCOLS.md A.8 and C.6 byte
for byte, strict rejection of malformed callbacks with the official error codes, and agreement with wechatpy 1.8.18."""

from __future__ import annotations

import base64
import string
import struct
from dataclasses import dataclass
from urllib.parse import unquote

import defusedxml.ElementTree as ElementTree
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from wechatpy.crypto import _get_signature
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto

from bot.callback_crypto import CallbackCryptoError, MsgCrypt

ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Vector:
    """One signed, encrypted callback and what is inside it; random/pad/total are the documented internals."""

    name: str
    token: str
    key: str
    receive_id: str
    signature: str
    timestamp: str
    nonce: str
    encrypted: str
    plaintext: bytes | None  # None: only parts of it are documented (W3c)
    random: bytes | None = None
    pad: int | None = None
    total: int | None = None


W1 = dict(token="hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", key="6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt")
W2 = dict(token="QDG6eK", key="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", receive_id="wx5823bf96d3bd56c7")
W3 = dict(token="123456", key="kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", receive_id="wx49f0ab532d5d035a")
D1 = dict(token="mryue", key="Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7", receive_id="ding6ccabc44d2c8d38b")

W1B_BODY = (
    "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA["
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+"
    "Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbj"
    "bfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHS"
    "GXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt>\n<AgentID><![CDATA[1000002]]></AgentID>\n</xml>"
)
W1B_ENCRYPT = ElementTree.fromstring(W1B_BODY).findtext("Encrypt")
W1B_PLAIN = (
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
    "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId>"
    "<AgentID>1000002</AgentID></xml>"
).encode()
W3B_PLAIN = "\n".join(
    [
        "<xml>",
        "<MsgType><![CDATA[text]]></MsgType>",
        "<Content><![CDATA[test]]></Content>",
        "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>",
        "<ToUserName><![CDATA[messense]]></ToUserName>",
        "<AgentID>1</AgentID>",
        "<CreateTime>1411525903</CreateTime>",
        "</xml>",
    ]
).encode()
W3B_ENCRYPT = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ"
    "+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p"
    "9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kF"
    "xtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
)

VECTORS = [
    Vector(
        "W1a", **W1, receive_id="ww1436e0e65a779aee", signature="012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
        timestamp="1476416373", nonce="47744683",
        encrypted="fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
        plaintext=b"1288432023552776189", random=b"8908d0ff052afda0", pad=7, total=64,
    ),
    Vector(
        "W1b", **W1, receive_id="ww1436e0e65a779aee", signature="0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
        timestamp="1476422779", nonce="1597212914", encrypted=W1B_ENCRYPT, plaintext=W1B_PLAIN,
        random=b"694ce5a83ae07fe3", pad=22, total=288,
    ),
    Vector(
        "W1c", **W1, receive_id="ww1436e0e65a779aee", signature="e3647471e395139e2308c1fa963f2d648a00b90e",
        timestamp="1409659813", nonce="1372623149",
        encrypted="cjhLUX7UU4yCSelv1vz7T0zT8huF51bAMVWriNvO1FMegHrQZNrtvRxbwf0fUPsFvwqR0U0fgiJNEA5Y30F2MoI2S7vv3EjVQ68C0c"
        "jw9frBoUE2Hj0BvFp9h3u6Vbsg4lc1C8AtHdaN8orKuNKkLRLuYEL52R1J3v8olJGZRLnRdVKIivixmX/eQpzgeExtp20jI1HxRP1AAZ6xZoIL"
        "dqDPO549LO4WeG+685JRUTdiwcY5fjZlqeMxuT4PpMn1X9OWsS7NRj06Wa5E3Tvg4twjWp39KPfOdRte6P1T4JU=",
        plaintext=b'{ "ToUserName": "wx5823bf96d3bd56c7", "FromUserName": :mycreate", "CreateTime": 1409659813, '
        b'"MsgType": "text", "Content": "hello", "MsgId": 4561255354251345929, "AgentID": 218}',
        random=b"dDVXRx6kn1gOT43Q", pad=10,
    ),
    Vector(
        "W2a", **W2, signature="5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", timestamp="1409659589", nonce="263014780",
        encrypted="P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
        plaintext=b"1616140317555161061", random=b"c41b64491c2468d0",
    ),
    Vector(
        "W2b", **W2, signature="477715d11cdb4164915debcba66cb864d751f3e6", timestamp="1409659813", nonce="1372623149",
        encrypted="RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W"
        "/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+"
        "LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2"
        "t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0"
        "lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==",
        plaintext=b"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
        b"<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n"
        b"<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n"
        b"<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>",
        random=b"0960688932c47ef1", pad=30,
    ),
    Vector(
        "W3a", **W3, signature="dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", timestamp="1411443780", nonce="437374425",
        encrypted="4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==",
        plaintext=b"5927782489442352469",
    ),
    Vector(
        "W3b", **W3, signature="407518b7649e86ef23978113f92d27afa9296533", timestamp="1411525903", nonce="461056294",
        encrypted=W3B_ENCRYPT, plaintext=W3B_PLAIN, random=b"1234567890123456",
    ),
    Vector(
        "W3c", **W3, signature="74d92dfeb87ba7c714f89d98870ae5eb62dff26d", timestamp="1411525903", nonce="461056294",
        encrypted="RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv28"
        "3dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P"
        "4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYE"
        "vccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=",
        plaintext=None, pad=1,
    ),
    Vector(
        "W4", **W1, receive_id="", signature="5bb3ec0034eca1713f76dd6fdd6c83f9b82ea68b", timestamp="1700000000",
        nonce="nonce123",
        encrypted="scEag1243Fmy/fYz4Ux8D6copXlxsxYg67ia4et9OlxD5hoZAswPGKUd1OuX4UnD9RANh1zaZ+n1BilmgBzWaKrfPjS9c7Zxpp"
        "Bs1vf5tkRhyD+7JkJq5U5lSCMPBnRwAVIY3oUEFqswJ3cDyzvZPIjp6WmpmEuH+xr+ftAiS0N7uNEZVQZhenxEeabiFm4qFLxqaKJgoLvG1SFU"
        "jX5RXw==",
        plaintext=b'{"msgid":"m1","chattype":"group","chatid":"CHAT1","from":{"userid":"zhangsan"},"msgtype":"text",'
        b'"text":{"content":"@bot /assign 42"}}',
        random=b"0123456789abcdef",
    ),
    Vector(
        "D1", **D1, signature="03044561471240d4a14bb09372dfcfd4fd0e40cb", timestamp="1608001896814", nonce="WL4PK6yA",
        encrypted="0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeK"
        "ju4yhELOFchzNukR+t8SB/qk4ROMu3",
        plaintext=b'{"EventType":"check_url"}', random=b"l7Y3EcX2CU5w8av3", pad=31,
    ),
    Vector(
        "D2", token="tokenxxxx", key="o1w0aum42yaptlz8alnhwikjd3jenzt9cb9wmzptgus", receive_id="dingxxxxxx",
        signature="f36f4ba5337d426c7d4bca0dbcb06b3ddc1388fc", timestamp="1605695694141", nonce="WelUQl6bCqcBa2fM",
        encrypted="X1VSe9cTJUMZu60d3kyLYTrBq5578ZRJtteU94wG0Q4Uk6E/wQYeJRIC0/UFW5Wkya1Ihz9oXAdLlyC9TRaqsQ==",
        plaintext=b"success", random=b"WelUQl6bCqcBa2fM", pad=27,
    ),
    Vector(
        "D3", token="123456", key="4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij", receive_id="suite4xxxxxxxxxxxxxxx",
        signature="5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0", timestamp="1445827045067", nonce="nEXhMP4r",
        encrypted="1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUBmfxjZ8"
        "Ej23JVYa9VrYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSBdHlegK+AGGanfwjXuQ9+0pZc"
        "y0w9lQ==",
        plaintext=b'{"EventType":"check_create_suite_url","Random":"LPIdSnlF","TestSuiteKey":"suite4xxxxxxxxxxxxxxx"}',
    ),
    Vector(
        "D4", **D1, signature="c74e45295bc530971a7185949972e375b18c3f30", timestamp="1608001896814", nonce="WL4PK6yA",
        encrypted="QjFVo6WtpzPr7RoyTeB2RiaR3xB2mMl8rk8y7ok0+3p4lanNu72WYgTGf2dCORsQrs6Yz+FV+5t9cYo8A/nGsg==",
        plaintext=b"success", random=b"abcdefghijklmnop",
    ),
]
BY_NAME = {vector.name: vector for vector in VECTORS}
vectors = pytest.mark.parametrize("vector", VECTORS, ids=[vector.name for vector in VECTORS])


def crypt_of(vector: Vector, **changes: str) -> MsgCrypt:
    fields = dict(token=vector.token, encoding_aes_key=vector.key, receive_id=vector.receive_id) | changes
    return MsgCrypt(**fields)


def aes(key: str) -> Cipher:
    raw = base64.b64decode(key + "=")
    return Cipher(algorithms.AES(raw), modes.CBC(raw[:16]))


def open_raw(key: str, encrypted: str) -> bytes:
    """The padded plaintext, decrypted without any of the module's checks."""
    decryptor = aes(key).decryptor()
    return decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()


def seal_raw(key: str, plain: bytes) -> str:
    """Encrypts ``plain`` (a multiple of 16 bytes) as is, so tests can forge bad padding and length fields."""
    encryptor = aes(key).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def error_code(call, *args) -> int:
    with pytest.raises(CallbackCryptoError) as caught:
        call(*args)
    return caught.value.code


# --- Published vectors ---------------------------------------------------------------------------------------------


@vectors
def test_vector_verifies_and_decrypts(vector):
    message = crypt_of(vector).verify(vector.signature, vector.timestamp, vector.nonce, vector.encrypted)
    if vector.plaintext is not None:
        assert message == vector.plaintext


@vectors
def test_vector_is_reproduced_by_a_deterministic_encrypt(vector):
    crypt = crypt_of(vector)
    message = crypt.decrypt(vector.encrypted)
    random = vector.random or open_raw(vector.key, vector.encrypted)[:16]
    encrypted = crypt.encrypt(message, random_prefix=random)
    assert encrypted == vector.encrypted
    assert crypt.signature(vector.timestamp, vector.nonce, encrypted) == vector.signature


@vectors
def test_vector_internals_match_the_documented_ones(vector):
    raw = open_raw(vector.key, vector.encrypted)
    message = crypt_of(vector).decrypt(vector.encrypted)
    (length,) = struct.unpack(">I", raw[16:20])
    assert length == len(message)
    assert raw[-1] == 32 - (20 + len(message) + len(vector.receive_id.encode())) % 32
    if vector.random is not None:
        assert raw[:16] == vector.random
    if vector.pad is not None:
        assert raw[-1] == vector.pad
    if vector.total is not None:
        assert len(raw) == vector.total


@vectors
def test_vector_agrees_with_wechatpy(vector):
    peer = WeChatCrypto(vector.token, vector.key, vector.receive_id)
    message = peer.check_signature(vector.signature, vector.timestamp, vector.nonce, vector.encrypted)
    assert message.encode() == crypt_of(vector).decrypt(vector.encrypted)


def test_w1b_post_body_carries_the_encrypt_and_a_228_byte_message():
    vector = BY_NAME["W1b"]
    assert W1B_ENCRYPT.startswith("Kl7kjoSf6DMD") and W1B_ENCRYPT.endswith("jmnKiypE+")
    assert len(crypt_of(vector).decrypt(vector.encrypted)) == 228


def test_w1b_reply_xml_equals_wechatpys_byte_for_byte(monkeypatch):
    vector = BY_NAME["W1b"]
    monkeypatch.setattr(PrpCrypto, "get_random_string", lambda self: vector.random.decode())
    peer = WeChatCrypto(vector.token, vector.key, vector.receive_id)
    ours = crypt_of(vector).reply_xml(vector.plaintext, vector.timestamp, vector.nonce, random_prefix=vector.random)
    assert ours == peer.encrypt_message(vector.plaintext.decode(), vector.nonce, vector.timestamp)
    assert f"<MsgSignature><![CDATA[{vector.signature}]]></MsgSignature>" in ours


def test_w1c_json_reply():
    vector = BY_NAME["W1c"]
    reply = crypt_of(vector).reply_json(vector.plaintext, vector.timestamp, vector.nonce, random_prefix=vector.random)
    assert reply == {
        "encrypt": vector.encrypted,
        "msgsignature": vector.signature,
        "timestamp": vector.timestamp,
        "nonce": vector.nonce,
    }
    assert len(vector.plaintext) == 176


def test_w2a_echostr_as_percent_encoded_on_the_wire():
    vector = BY_NAME["W2a"]
    wire = "P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D"
    assert unquote(wire) == vector.encrypted
    assert len(vector.plaintext) == 19 and len(BY_NAME["W2b"].plaintext) == 284


def test_w3a_wrong_nonce_is_a_signature_error():
    vector = BY_NAME["W3a"]
    code = error_code(crypt_of(vector).verify, vector.signature, vector.timestamp, "437374424", vector.encrypted)
    assert code == -40001


def test_w3b_whole_reply_is_the_official_template():
    vector = BY_NAME["W3b"]
    reply = crypt_of(vector).reply_xml(W3B_PLAIN, vector.timestamp, vector.nonce, random_prefix=b"1234567890123456")
    assert reply == (
        f"<xml>\n<Encrypt><![CDATA[{W3B_ENCRYPT}]]></Encrypt>\n"
        "<MsgSignature><![CDATA[407518b7649e86ef23978113f92d27afa9296533]]></MsgSignature>\n"
        "<TimeStamp>1411525903</TimeStamp>\n<Nonce><![CDATA[461056294]]></Nonce>\n</xml>"
    )


def test_w3c_message_fields_and_minimum_pad():
    vector = BY_NAME["W3c"]
    message = crypt_of(vector).decrypt(vector.encrypted)
    assert len(message) == 281
    root = ElementTree.fromstring(message)
    assert root.findtext("FromUserName") == "messense"
    assert root.findtext("Content") == "test"
    assert root.findtext("MsgId") == "4363689963896700987"
    assert root.findtext("AgentID") == "1"


def test_w4_and_d4_replies_with_the_documented_random():
    w4, d4 = BY_NAME["W4"], BY_NAME["D4"]
    assert crypt_of(w4).reply_json(w4.plaintext, w4.timestamp, w4.nonce, random_prefix=w4.random) == {
        "encrypt": w4.encrypted,
        "msgsignature": w4.signature,
        "timestamp": "1700000000",
        "nonce": "nonce123",
    }
    assert crypt_of(d4).encrypt("success", random_prefix=b"abcdefghijklmnop") == d4.encrypted
    assert crypt_of(d4).signature("1608001896814", "WL4PK6yA", d4.encrypted) == d4.signature


# --- Rejections ----------------------------------------------------------------------------------------------------


def test_wrong_receive_id_is_40005():
    vector = BY_NAME["W1b"]
    for other in ["ww1436e0e65a779aef", "ww1436e0e65a779ae", "", "ww1436e0e65a779aee "]:
        assert error_code(crypt_of(vector, receive_id=other).decrypt, vector.encrypted) == -40005
    ai_bot = BY_NAME["W4"]  # an empty receive id is not a wildcard
    assert error_code(crypt_of(ai_bot, receive_id="ww1436e0e65a779aee").decrypt, ai_bot.encrypted) == -40005


def test_tampered_encrypt_is_a_signature_error():
    vector = BY_NAME["W1b"]
    tampered = ("L" if vector.encrypted[0] == "K" else "K") + vector.encrypted[1:]
    assert error_code(crypt_of(vector).verify, vector.signature, vector.timestamp, vector.nonce, tampered) == -40001


def test_untrusted_signature_inputs_give_40001_never_type_error():
    vector = BY_NAME["W1a"]
    crypt = crypt_of(vector)
    for signature in ["", "签名", "\ud800", vector.signature.upper(), None]:
        assert error_code(crypt.check_signature, signature, vector.timestamp, vector.nonce, vector.encrypted) == -40001
    assert error_code(crypt.verify, "x", "", "\udfff", "é") == -40001


#: 16 random bytes, a length field of 2, "hi" and W1's corpid: 40 bytes, so a well-formed pad is 24 bytes of 24.
def _forge(pad: bytes, length: int = 2) -> str:
    return seal_raw(BY_NAME["W1a"].key, b"0" * 16 + struct.pack(">I", length) + b"hi" + b"ww1436e0e65a779aee" + pad)


def test_forged_plaintext_with_good_padding_decrypts():
    assert crypt_of(BY_NAME["W1a"]).decrypt(_forge(b"\x18" * 24)) == b"hi"


@pytest.mark.parametrize(
    "pad",
    [bytes(23) + b"\x00", b"\x21" * 24, b"\xff" * 24, b"\x17" + b"\x18" * 23, b"\x18" * 10 + b"\x00" + b"\x18" * 13],
    ids=["pad-0", "pad-33", "pad-255", "pad-one-short", "pad-inconsistent"],
)
def test_bad_padding_is_40008(pad):
    assert error_code(crypt_of(BY_NAME["W1a"]).decrypt, _forge(pad)) == -40008


@pytest.mark.parametrize("length", [21, 0xFFFFFFFF], ids=["one-past-the-end", "max"])
def test_length_field_past_the_plaintext_is_40008(length):
    assert error_code(crypt_of(BY_NAME["W1a"]).decrypt, _forge(b"\x18" * 24, length)) == -40008


def test_length_field_swallowing_the_receive_id_is_40005():
    assert error_code(crypt_of(BY_NAME["W1a"]).decrypt, _forge(b"\x18" * 24, 20)) == -40005


@pytest.mark.parametrize("plain", [b"0" * 16 + bytes(3) + b"\x0d" * 13, b"\x20" * 32], ids=["19-bytes", "pad-only"])
def test_plaintext_shorter_than_the_header_is_40008(plain):
    # Well-formed padding that leaves fewer than the 20 header bytes.
    assert error_code(crypt_of(BY_NAME["W1a"], receive_id="").decrypt, seal_raw(BY_NAME["W1a"].key, plain)) == -40008


def test_shortest_message_with_empty_receive_id():
    forged = seal_raw(BY_NAME["W1a"].key, b"0" * 16 + bytes(4) + b"\x0c" * 12)
    assert crypt_of(BY_NAME["W1a"], receive_id="").decrypt(forged) == b""


@pytest.mark.parametrize(
    "encrypted",
    [
        BY_NAME["W1a"].encrypted[:-1],  # truncated: bad padding of the base64
        BY_NAME["W1a"].encrypted[:-3],  # truncated mid-quantum
        "not base64!",
        BY_NAME["W1a"].encrypted[:76] + "\n" + BY_NAME["W1a"].encrypted[76:],  # encodebytes-style line break
        BY_NAME["W1a"].encrypted.replace("+", "-"),  # url-safe alphabet
        "é" + BY_NAME["W1a"].encrypted,
        "QUJD=QUJD",
    ],
    ids=["truncated-1", "truncated-3", "junk", "newline", "urlsafe", "non-ascii", "inner-padding"],
)
def test_bad_base64_is_40010(encrypted):
    assert error_code(crypt_of(BY_NAME["W1a"]).decrypt, encrypted) == -40010


@pytest.mark.parametrize("size", [0, 16, 33, 47, 63])
def test_ciphertext_not_whole_blocks_or_too_short_is_40007(size):
    encrypted = base64.b64encode(bytes(size)).decode()
    assert error_code(crypt_of(BY_NAME["W1a"]).decrypt, encrypted) == -40007


@pytest.mark.parametrize(
    "key",
    [
        "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhU",
        "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUtt",
        "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt=",
        "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhU+",
        "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt\n",
        "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUé",
        "",
        None,
    ],
)
def test_key_not_43_alphanumerics_is_40004(key):
    assert error_code(MsgCrypt, "token", key, "corp") == -40004


def test_key_error_does_not_echo_the_key():
    key = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqh"
    with pytest.raises(CallbackCryptoError) as caught:
        MsgCrypt("token", key, "corp")
    assert key not in str(caught.value)


@pytest.mark.parametrize("nonce", ["a]]>b", "\ud800", "\x00"])
def test_reply_xml_refuses_values_that_break_the_template(nonce):
    assert error_code(crypt_of(BY_NAME["W1a"]).reply_xml, "success", "1", nonce) == -40011
    assert error_code(crypt_of(BY_NAME["W1a"]).reply_xml, "success", "1<2", "n") == -40011


# --- Encrypt ---------------------------------------------------------------------------------------------------------


def test_default_random_prefix_is_fresh_letters_and_digits():
    vector = BY_NAME["W1a"]
    crypt = crypt_of(vector)
    first, second = crypt.encrypt("1288432023552776189"), crypt.encrypt("1288432023552776189")
    assert first != second
    for encrypted in (first, second):
        assert set(open_raw(vector.key, encrypted)[:16].decode()) <= set(ALNUM)
        assert crypt.decrypt(encrypted) == b"1288432023552776189"


@pytest.mark.parametrize("size", [0, 1, 25, 26, 27, 57, 58, 500])
def test_round_trip_across_padding_boundaries_without_newlines(size):
    crypt = crypt_of(BY_NAME["W1a"])  # 16 + 4 + 18-byte corpid = 38: 26 message bytes make 64, so a pad of 32
    message = (bytes(range(256)) * 2)[:size]
    encrypted = crypt.encrypt(message)
    assert "\n" not in encrypted
    assert crypt.decrypt(encrypted) == message


def test_full_block_of_pad_32():
    vector = BY_NAME["W1a"]
    encrypted = crypt_of(vector).encrypt(b"m" * 26, random_prefix=b"0" * 16)
    raw = open_raw(vector.key, encrypted)
    assert len(raw) == 96 and raw[-32:] == b"\x20" * 32
    assert crypt_of(vector).decrypt(encrypted) == b"m" * 26


def test_random_prefix_must_be_16_bytes():
    with pytest.raises(ValueError):
        crypt_of(BY_NAME["W1a"]).encrypt("x", random_prefix=b"short")


# --- Properties and wechatpy as a peer -----------------------------------------------------------------------------

KEYS = st.text(alphabet=ALNUM, min_size=43, max_size=43)
NONCES = st.text(alphabet=ALNUM, min_size=1, max_size=32)
TIMESTAMPS = st.integers(min_value=0, max_value=10**13).map(str)
UNTRUSTED = st.text(alphabet=st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=64)
bounded = settings(max_examples=50, deadline=None)


@bounded
@given(key=KEYS)
def test_any_43_alphanumerics_decode_to_32_bytes(key):
    # The low 2 bits of the 43rd character are dropped (W1's key ends in "t", 0b101101), so every such key is valid.
    assert len(base64.b64decode(key + "=")) == 32
    MsgCrypt("t", key, "")


@bounded
@given(key=KEYS, token=st.text(), receive_id=st.text(), message=st.text(), timestamp=TIMESTAMPS, nonce=NONCES)
def test_wechatpy_decrypts_ours(key, token, receive_id, message, timestamp, nonce):
    reply = MsgCrypt(token, key, receive_id).reply_xml(message, timestamp, nonce)
    root = ElementTree.fromstring(reply)
    encrypted, signature = root.findtext("Encrypt"), root.findtext("MsgSignature")
    assert signature == _get_signature(token, timestamp, nonce, encrypted)
    assert WeChatCrypto(token, key, receive_id).decrypt_message(reply, signature, timestamp, nonce) == message


@bounded
@given(key=KEYS, token=st.text(), receive_id=st.text(), message=st.text(), timestamp=TIMESTAMPS, nonce=NONCES)
def test_we_decrypt_wechatpys(key, token, receive_id, message, timestamp, nonce):
    root = ElementTree.fromstring(WeChatCrypto(token, key, receive_id).encrypt_message(message, nonce, timestamp))
    encrypted, signature = root.findtext("Encrypt"), root.findtext("MsgSignature")
    crypt = MsgCrypt(token, key, receive_id)
    assert crypt.signature(timestamp, nonce, encrypted) == signature
    assert crypt.verify(signature, timestamp, nonce, encrypted) == message.encode()


@bounded
@given(token=st.text(), timestamp=st.text(), nonce=st.text(), encrypted=st.text())
def test_signatures_agree_with_wechatpy_on_any_text(token, timestamp, nonce, encrypted):
    crypt = MsgCrypt(token, BY_NAME["W1a"].key, "")
    assert crypt.signature(timestamp, nonce, encrypted) == _get_signature(token, timestamp, nonce, encrypted)


@bounded
@given(signature=UNTRUSTED, timestamp=UNTRUSTED, nonce=UNTRUSTED, encrypted=UNTRUSTED)
def test_untrusted_text_only_ever_raises_callback_crypto_error(signature, timestamp, nonce, encrypted):
    crypt = crypt_of(BY_NAME["W1a"])
    with pytest.raises(CallbackCryptoError):
        crypt.verify(signature, timestamp, nonce, encrypted)
    with pytest.raises(CallbackCryptoError):
        crypt.decrypt(encrypted)


@bounded
@given(blocks=st.integers(min_value=2, max_value=8), data=st.data())
def test_random_ciphertexts_raise_only_callback_crypto_error(blocks, data):
    sealed = data.draw(st.binary(min_size=16 * blocks, max_size=16 * blocks))
    try:
        crypt_of(BY_NAME["W1a"]).decrypt(base64.b64encode(sealed).decode())
    except CallbackCryptoError as error:
        assert error.code in (-40005, -40008)
