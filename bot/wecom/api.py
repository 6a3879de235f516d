"""The WeCom server API (PROTOCOLS.md B): one access token per app, shared through the
database by every instance, refreshed early and whenever WeCom refuses it.

Errors are classified here, once: ``Unreachable`` (no answer, or a 5xx — the platform
may or may not have acted) versus a JSON answer whose ``errcode`` the caller reads.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import aiohttp
from sqlalchemy import Engine

from bot.chat.events import MediaGone
from bot.clock import now as clock_now
from bot.settings import WeComSettings
from storage import tokens
from storage.db import transaction

log = logging.getLogger(__name__)

TOKEN_ERRORS = {40014, 42001, 41001, 40001}  # invalid, expired, missing token; "invalid credential"
REFRESH_MARGIN = timedelta(minutes=5)  # refresh this long before WeCom's stated expiry
REFRESH_LEASE = timedelta(seconds=20)
TIMEOUT = aiohttp.ClientTimeout(total=10)  # also bounds how late a claimed send can land (rate limits)


class Unreachable(Exception):
    """WeCom did not answer usably; ``in_doubt`` when the request may have been acted on."""

    def __init__(self, reason: str, *, in_doubt: bool) -> None:
        super().__init__(reason)
        self.in_doubt = in_doubt


MAX_MEDIA = 50 * 1024 * 1024  # bytes; WeCom's temporary media are at most 20 MB (video)
MEDIA_TIMEOUT = aiohttp.ClientTimeout(total=120)


class WeComAPI:
    """Calls to ``[wecom] api_base`` with the app's token."""

    def __init__(self, settings: WeComSettings, engine: Engine, owner: str, http: aiohttp.ClientSession) -> None:
        self.settings, self.engine, self.owner, self.http = settings, engine, owner, http
        self.base = settings.api_base.rstrip("/")
        self.token_key = f"wecom:{settings.corp_id}:{settings.agent_id}"
        self._token: tuple[str, object] | None = None  # (token, expires_at) cached in memory
        self._refreshing = asyncio.Lock()

    async def post(self, path: str, body: dict, *, params: dict | None = None, with_token: bool = True) -> dict:
        """POST JSON; on a token error, refresh once and try again."""
        for attempt in (1, 2):
            query = dict(params or {})
            token = None
            if with_token:
                token = await self.token()
                query["access_token"] = token
            answer = await self._request("POST", path, params=query, json=body)
            if with_token and answer.get("errcode") in TOKEN_ERRORS and attempt == 1:
                await self.forget(token)
                continue
            return answer
        return answer

    async def media(self, media_id: str) -> tuple[bytes, str, str]:
        """Download temporary media (获取临时素材): content, file name, content type."""
        for attempt in (1, 2):
            token = await self.token()
            try:
                async with self.http.get(f"{self.base}/cgi-bin/media/get", timeout=MEDIA_TIMEOUT,
                                         params={"access_token": token, "media_id": media_id}) as response:
                    if response.status != 200:
                        raise Unreachable(f"HTTP {response.status}", in_doubt=False)
                    if response.content_type in ("application/json", "text/plain"):
                        answer = await response.json(content_type=None)
                        if answer.get("errcode") in TOKEN_ERRORS and attempt == 1:
                            await self.forget(token)
                            continue
                        raise MediaGone(f"errcode {answer.get('errcode')}")
                    data = await response.content.read(MAX_MEDIA + 1)
                    if len(data) > MAX_MEDIA:
                        raise MediaGone("larger than the bot keeps")
                    name = response.content_disposition.filename if response.content_disposition else ""
                    return data, name or "", response.content_type
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                raise Unreachable(type(exc).__name__, in_doubt=False) from None
        raise MediaGone("access token refused twice")

    async def upload(self, kind: str, data: bytes, name: str, content_type: str) -> str:
        """Temporary media (上传临时素材), for an image message; returns its media_id."""
        for attempt in (1, 2):
            token = await self.token()
            form = aiohttp.FormData()
            form.add_field("media", data, filename=name, content_type=content_type)
            answer = await self._request("POST", "media/upload", params={"access_token": token, "type": kind},
                                         data=form)
            if answer.get("errcode") in TOKEN_ERRORS and attempt == 1:
                await self.forget(token)
                continue
            if answer.get("errcode", 0) != 0 or not answer.get("media_id"):
                raise Unreachable(f"media/upload errcode {answer.get('errcode')}", in_doubt=False)
            return answer["media_id"]
        raise Unreachable("access token refused twice", in_doubt=False)

    async def post_url(self, url: str, body: dict) -> dict:
        """POST JSON to a full URL WeCom gave us (an AI bot's response_url)."""
        return await self._request("POST", url, json=body, absolute=True)

    async def _request(self, method: str, path: str, *, absolute: bool = False, **kwargs) -> dict:
        url = path if absolute else f"{self.base}/cgi-bin/{path}"
        try:
            async with self.http.request(method, url, timeout=TIMEOUT, **kwargs) as response:
                if response.status >= 500:
                    raise Unreachable(f"HTTP {response.status}", in_doubt=True)
                if response.status != 200:
                    raise Unreachable(f"HTTP {response.status}", in_doubt=False)
                return await response.json(content_type=None)
        except (TimeoutError, aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise Unreachable(type(exc).__name__, in_doubt=True) from None
        except aiohttp.ClientConnectorError as exc:  # never connected: WeCom has nothing
            raise Unreachable(type(exc).__name__, in_doubt=False) from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise Unreachable(type(exc).__name__, in_doubt=True) from None

    async def token(self) -> str:
        """A valid access token: this instance's copy, the shared one, or a fresh one."""
        now = clock_now()
        if self._token and self._token[1] - REFRESH_MARGIN > now:
            return self._token[0]
        async with self._refreshing:
            for _ in range(100):  # another instance may be fetching it: wait for its result
                now = clock_now()
                shared = await asyncio.to_thread(self._shared, now)
                if shared:
                    self._token = shared
                    return shared[0]
                if await asyncio.to_thread(self._begin_refresh, now):
                    return await self._fetch()
                await asyncio.sleep(0.2)
        raise Unreachable("access token not available", in_doubt=False)

    async def forget(self, token: str | None) -> None:
        """WeCom refused ``token`` (it may invalidate tokens early): never use it again."""
        if self._token and self._token[0] == token:
            self._token = None
        if token:
            await asyncio.to_thread(self._invalidate, token)

    async def _fetch(self) -> str:
        params = {"corpid": self.settings.corp_id,
                  "corpsecret": self.settings.secret.get_secret_value() if self.settings.secret else ""}
        try:
            answer = await self._request("GET", "gettoken", params=params)
        except Unreachable:
            await asyncio.to_thread(self._abandon)
            raise
        if answer.get("errcode", 0) != 0 or "access_token" not in answer:
            await asyncio.to_thread(self._abandon)
            # The secret never goes to the log; the error code says what to fix.
            log.error("WeCom refused the app credentials: errcode %s", answer.get("errcode"))
            raise Unreachable(f"gettoken errcode {answer.get('errcode')}", in_doubt=False)
        expires_at = clock_now() + timedelta(seconds=int(answer.get("expires_in", 7200)))
        token = answer["access_token"]
        await asyncio.to_thread(self._store, token, expires_at)
        self._token = (token, expires_at)
        return token

    def _shared(self, now):
        with transaction(self.engine) as session:
            return tokens.current(session, self.token_key, now, REFRESH_MARGIN)

    def _begin_refresh(self, now) -> bool:
        with transaction(self.engine) as session:
            return tokens.begin_refresh(session, self.token_key, self.owner, now, REFRESH_LEASE)

    def _store(self, token: str, expires_at) -> None:
        with transaction(self.engine) as session:
            tokens.store(session, self.token_key, token, expires_at)

    def _abandon(self) -> None:
        with transaction(self.engine) as session:
            tokens.abandon_refresh(session, self.token_key, self.owner)

    def _invalidate(self, token: str) -> None:
        with transaction(self.engine) as session:
            tokens.invalidate(session, self.token_key, token)
