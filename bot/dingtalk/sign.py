"""The robot signature (PROTOCOLS.md C.1, C.2): Base64(HMAC-SHA256(secret, timestamp +
"\\n" + secret)), on the ``timestamp``/``sign`` headers of a robot-message callback."""

from __future__ import annotations

import base64
import hashlib
import hmac

WINDOW_MS = 3600 * 1000  # an event push's timestamp may be this far from our clock (C.6: signed with its body)
# A robot message's: five minutes. Its sign covers only the timestamp, so a leaked pair
# is good for any body until it is stale (``storage.signatures`` lets a pair carry one
# message only). The hour of C.1 is third-party implementations' default, not DingTalk's
# text; DingTalk signs as it sends, waits about 1.5 s for the answer and does not resend
# robot messages (C.1, C.7): a genuine timestamp is seconds old, and five minutes leave
# room for a clock that drifted.
ROBOT_WINDOW_MS = 5 * 60 * 1000


class BadSignature(Exception):
    """The sign does not match the timestamp and our app secret."""


class StaleTimestamp(Exception):
    """The timestamp is missing, malformed or outside the accepted window."""


def robot_sign(timestamp: str, secret: str) -> str:
    """The ``sign`` DingTalk computes for ``timestamp`` (milliseconds, as sent)."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def millis(value: object) -> int | None:
    """A millisecond timestamp as DingTalk sends it (digits, or a number), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.isascii() and value.isdecimal() and len(value) <= 15:
        return int(value)
    return None


def check_robot_headers(timestamp: str, sign: str, secret: str, now_ms: int) -> None:
    """Accept only a fresh timestamp whose sign we compute too (compared in constant time).

    Raises:
        StaleTimestamp: no usable timestamp, or more than ``ROBOT_WINDOW_MS`` away.
        BadSignature: the sign differs.
    """
    sent = millis(timestamp)
    if sent is None or abs(now_ms - sent) > ROBOT_WINDOW_MS:
        raise StaleTimestamp()
    if not hmac.compare_digest(sign.encode("utf-8", "replace"), robot_sign(timestamp, secret).encode("ascii")):
        raise BadSignature()
