"""A platform's access token, shared by every instance through the database.

Each instance keeps a copy in memory; when it runs low, one instance at a time fetches
a new one (a lease on the row, ``storage.tokens``) and the others wait for its result,
so the platform's rate-limited token API is called once however many instances run.
A token the platform refuses early is forgotten everywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine

from bot.clock import now as clock_now
from storage import tokens
from storage.db import transaction

REFRESH_MARGIN = timedelta(minutes=5)  # refresh this long before the platform's stated expiry
REFRESH_LEASE = timedelta(seconds=20)

#: Fetches a new token from the platform: (token, seconds it is valid). Raises on failure.
Fetch = Callable[[], Awaitable[tuple[str, int]]]


class TokenUnavailable(Exception):
    """No token could be had (another instance held the refresh for too long)."""


class SharedAccessToken:
    """One app's token: ``await get()``; ``await forget(token)`` when the platform refuses it."""

    def __init__(self, engine: Engine, key: str, owner: str, fetch: Fetch) -> None:
        self.engine, self.key, self.owner, self._fetch = engine, key, owner, fetch
        self._cached: tuple[str, datetime] | None = None
        self._refreshing = asyncio.Lock()

    async def get(self) -> str:
        """A valid token: this instance's copy, the shared one, or a fresh one."""
        if self._cached and self._cached[1] - REFRESH_MARGIN > clock_now():
            return self._cached[0]
        async with self._refreshing:
            for _ in range(100):  # another instance may be fetching it: wait for its result
                now = clock_now()
                shared = await asyncio.to_thread(self._in_db, tokens.current, self.key, now, REFRESH_MARGIN)
                if shared:
                    self._cached = shared
                    return shared[0]
                if await asyncio.to_thread(self._in_db, tokens.begin_refresh, self.key, self.owner, now,
                                           REFRESH_LEASE):
                    return await self._refresh()
                await asyncio.sleep(0.2)
        raise TokenUnavailable(self.key)

    async def forget(self, token: str | None) -> None:
        """The platform refused ``token`` (it may invalidate tokens early): never use it again."""
        if self._cached and self._cached[0] == token:
            self._cached = None
        if token:
            await asyncio.to_thread(self._in_db, tokens.invalidate, self.key, token)

    async def _refresh(self) -> str:
        try:
            token, valid_for = await self._fetch()
        except BaseException:
            await asyncio.to_thread(self._in_db, tokens.abandon_refresh, self.key, self.owner)
            raise
        expires_at = clock_now() + timedelta(seconds=valid_for)
        await asyncio.to_thread(self._in_db, tokens.store, self.key, token, expires_at)
        self._cached = (token, expires_at)
        return token

    def _in_db(self, operation, *args):
        with transaction(self.engine) as session:
            return operation(session, *args)
