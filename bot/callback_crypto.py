"""WXBizMsgCrypt, the callback crypto shared by WeCom callbacks and DingTalk event subscriptions (PROTOCOLS.md A, C.6).

Wire form: ``base64(AES-256-CBC(random16 ‖ uint32-BE len(msg) ‖ msg ‖ receive_id ‖ PKCS#7 pad to 32))`` with
key = base64(EncodingAESKey + "=") and IV = key[:16], signed by SHA-1 over the sorted (token, timestamp, nonce,
encrypted). The receive id is the corpid (WeCom app), "" (WeCom AI bot) or the ownerKey (DingTalk: appKey, corpId or
suiteKey). Decryption is stricter than the official samples: every malformed input raises :class:`CallbackCryptoError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import string
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_KEY_PATTERN = re.compile(r"[A-Za-z0-9]{43}")
_RANDOM_ALPHABET = string.ascii_letters + string.digits
_BLOCK = 32  # PKCS#7 block of the scheme; twice the AES block, proven by official vector W1b
_HEADER = 20  # 16 random bytes and the 4-byte length
# Characters that would break the fixed XML reply: markup outside CDATA, the CDATA terminator, and what XML 1.0 forbids.
_XML_UNSAFE = re.compile(r"[<&\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]|]]>")
_REPLY_XML = (
    "<xml>\n<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n<MsgSignature><![CDATA[{signature}]]></MsgSignature>\n"
    "<TimeStamp>{timestamp}</TimeStamp>\n<Nonce><![CDATA[{nonce}]]></Nonce>\n</xml>"
)


class CallbackCryptoError(ValueError):
    """A callback that fails verification; ``code`` is the official sample's error code (A.7)."""

    SIGNATURE = -40001
    BAD_KEY = -40004
    RECEIVE_ID = -40005
    DECRYPT = -40007
    BUFFER = -40008
    BASE64 = -40010
    XML = -40011

    def __init__(self, code: int, reason: str):
        super().__init__(f"{reason} ({code})")
        self.code = code
        self.reason = reason


def _utf8(text: str) -> bytes:
    # surrogatepass: a hostile query string must give a mismatch, not a UnicodeEncodeError.
    return text.encode("utf-8", "surrogatepass")


class MsgCrypt:
    """Signs, encrypts and decrypts callbacks for one (token, EncodingAESKey, receive id).

    Args:
        token: The callback token, used only in signatures.
        encoding_aes_key: 43 characters of [A-Za-z0-9]; never echoed in errors.
        receive_id: The corpid, suite id, DingTalk ownerKey, or "" (WeCom AI bot).

    Raises:
        CallbackCryptoError: -40004 if the key is malformed.
    """

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str):
        if not isinstance(encoding_aes_key, str) or not _KEY_PATTERN.fullmatch(encoding_aes_key):
            raise CallbackCryptoError(CallbackCryptoError.BAD_KEY, "EncodingAESKey must be 43 characters [A-Za-z0-9]")
        key = base64.b64decode(encoding_aes_key + "=")
        if len(key) != 32:  # unreachable for 43 characters; kept as the spec's own check
            raise CallbackCryptoError(CallbackCryptoError.BAD_KEY, "EncodingAESKey does not decode to 32 bytes")
        self._token = token.encode("utf-8")
        self._receive_id = receive_id.encode("utf-8")
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(key[:16]))

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        """SHA-1 of the sorted, concatenated four strings, as 40 lowercase hex digits (A.2)."""
        # UTF-8 byte order equals code-point order, so sorting bytes matches the samples for any input.
        parts = sorted([self._token, _utf8(timestamp), _utf8(nonce), _utf8(encrypted)])
        return hashlib.sha1(b"".join(parts)).hexdigest()

    def check_signature(self, signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        """Raises CallbackCryptoError(-40001) unless ``signature`` signs the other three."""
        if not all(isinstance(value, str) for value in (signature, timestamp, nonce, encrypted)):
            raise CallbackCryptoError(CallbackCryptoError.SIGNATURE, "signature inputs must be strings")
        # Bytes, because compare_digest raises TypeError on non-ASCII str.
        if not hmac.compare_digest(_utf8(signature), self.signature(timestamp, nonce, encrypted).encode("ascii")):
            raise CallbackCryptoError(CallbackCryptoError.SIGNATURE, "signature mismatch")

    def encrypt(self, message: bytes | str, *, random_prefix: bytes | None = None) -> str:
        """Encrypts ``message`` for this receive id (A.3) as standard base64 without newlines.

        Args:
            message: The plaintext; str is encoded as UTF-8.
            random_prefix: 16 bytes to use instead of fresh random letters and digits (for test vectors).
        """
        if random_prefix is None:
            random_prefix = "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(16)).encode("ascii")
        if len(random_prefix) != 16:
            raise ValueError("random_prefix must be 16 bytes")
        body = message.encode("utf-8") if isinstance(message, str) else bytes(message)
        plain = random_prefix + struct.pack(">I", len(body)) + body + self._receive_id
        pad = _BLOCK - len(plain) % _BLOCK
        encryptor = self._cipher.encryptor()
        sealed = encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()
        return base64.b64encode(sealed).decode("ascii")

    def decrypt(self, encrypted: str) -> bytes:
        """Returns the message bytes inside ``encrypted``; strict about every layer (A.3).

        Raises:
            CallbackCryptoError: -40010 bad base64, -40007 bad ciphertext length, -40008 bad padding or length field,
                -40005 a different receive id.
        """
        try:
            sealed = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise CallbackCryptoError(CallbackCryptoError.BASE64, "encrypted text is not base64") from None
        if len(sealed) % 16 or len(sealed) < _BLOCK:
            raise CallbackCryptoError(CallbackCryptoError.DECRYPT, "ciphertext not whole AES blocks of >= 32 bytes")
        decryptor = self._cipher.decryptor()
        plain = decryptor.update(sealed) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= _BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise CallbackCryptoError(CallbackCryptoError.BUFFER, "bad padding")
        content = plain[:-pad]
        if len(content) < _HEADER:
            raise CallbackCryptoError(CallbackCryptoError.BUFFER, "plaintext too short")
        (length,) = struct.unpack(">I", content[16:_HEADER])
        if _HEADER + length > len(content):
            raise CallbackCryptoError(CallbackCryptoError.BUFFER, "length field exceeds plaintext")
        if not hmac.compare_digest(content[_HEADER + length :], self._receive_id):
            raise CallbackCryptoError(CallbackCryptoError.RECEIVE_ID, "receive id mismatch")
        return content[_HEADER : _HEADER + length]

    def verify(self, signature: str, timestamp: str, nonce: str, encrypted: str) -> bytes:
        """Checks the signature, then decrypts; the signature comes first so no unsigned ciphertext is decrypted."""
        self.check_signature(signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)

    def reply_xml(self, message: bytes | str, timestamp: str, nonce: str, *, random_prefix: bytes | None = None) -> str:
        """The encrypted passive reply in the official XML template (A.6).

        Raises:
            CallbackCryptoError: -40011 if ``timestamp`` or ``nonce`` would break the XML.
        """
        if any(_XML_UNSAFE.search(value) for value in (timestamp, nonce)):
            raise CallbackCryptoError(CallbackCryptoError.XML, "timestamp or nonce unsafe in XML")
        encrypt = self.encrypt(message, random_prefix=random_prefix)
        signature = self.signature(timestamp, nonce, encrypt)
        return _REPLY_XML.format(encrypt=encrypt, signature=signature, timestamp=timestamp, nonce=nonce)

    def reply_json(
        self, message: bytes | str, timestamp: str, nonce: str, *, random_prefix: bytes | None = None
    ) -> dict:
        """The encrypted reply of WeCom's JSON callbacks (A.6); DingTalk (C.6) uses other key names."""
        encrypt = self.encrypt(message, random_prefix=random_prefix)
        return {
            "encrypt": encrypt,
            "msgsignature": self.signature(timestamp, nonce, encrypt),
            "timestamp": timestamp,
            "nonce": nonce,
        }
