"""How a call to a platform's API failed, the same on every platform: whether the
platform may have acted on it decides whether a send is retried as in doubt."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp


class Unreachable(Exception):
    """The platform did not answer usably; ``in_doubt`` when the request may have been acted on."""

    def __init__(self, reason: str, *, in_doubt: bool) -> None:
        super().__init__(reason)
        self.in_doubt = in_doubt


@contextmanager
def transport_failures() -> Iterator[None]:
    """aiohttp's failures as ``Unreachable``: in doubt unless no connection was ever made
    (then the platform has nothing); an answer that is not JSON is in doubt too."""
    try:
        yield
    except (TimeoutError, aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
        raise Unreachable(type(exc).__name__, in_doubt=True) from None
    except aiohttp.ClientConnectorError as exc:  # never connected
        raise Unreachable(type(exc).__name__, in_doubt=False) from None
    except (aiohttp.ClientError, ValueError) as exc:
        raise Unreachable(type(exc).__name__, in_doubt=True) from None
