"""The WeCom server API (PROTOCOLS.md B): one access token per app, shared through the
database by every instance (``bot.chat.access_token``), refreshed early and whenever
WeCom refuses it.

Errors are classified here: ``Unreachable`` (``bot.chat.transport``: no answer, or a 5xx — the platform
may or may not have acted) versus a JSON answer whose ``errcode`` the caller reads.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from sqlalchemy import Engine

from bot.chat.access_token import SharedAccessToken, TokenUnavailable
from bot.chat.events import MediaGone
from bot.chat.media import MEDIA_TIMEOUT, read_media
from bot.chat.transport import Unreachable, transport_failures
from bot.settings import WeComSettings

log = logging.getLogger(__name__)

TOKEN_ERRORS = {40014, 42001, 41001, 40001}  # invalid, expired, missing token; "invalid credential"
TIMEOUT = aiohttp.ClientTimeout(total=10)  # also bounds how late a claimed send can land (rate limits)




class WeComAPI:
    """Calls to ``[wecom] api_base`` with the app's token."""

    def __init__(self, settings: WeComSettings, engine: Engine, owner: str, http: aiohttp.ClientSession) -> None:
        self.settings, self.engine, self.owner, self.http = settings, engine, owner, http
        self.base = settings.api_base.rstrip("/")
        self._token = SharedAccessToken(engine, f"wecom:{settings.corp_id}:{settings.agent_id}", owner,
                                        self._fetch_token)

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
                    return await read_media(response)
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

    async def _request(self, method: str, path: str, *, absolute: bool = False, **kwargs: Any) -> dict:
        url = path if absolute else f"{self.base}/cgi-bin/{path}"
        with transport_failures():
            async with self.http.request(method, url, timeout=TIMEOUT, **kwargs) as response:
                if response.status >= 500:
                    raise Unreachable(f"HTTP {response.status}", in_doubt=True)
                if response.status != 200:
                    raise Unreachable(f"HTTP {response.status}", in_doubt=False)
                return await response.json(content_type=None)

    async def token(self) -> str:
        try:
            return await self._token.get()
        except TokenUnavailable:
            raise Unreachable("access token not available", in_doubt=False) from None

    async def forget(self, token: str | None) -> None:
        """WeCom refused ``token``: never use it again (on any instance)."""
        await self._token.forget(token)

    async def _fetch_token(self) -> tuple[str, int]:
        params = {"corpid": self.settings.corp_id,
                  "corpsecret": self.settings.secret.get_secret_value() if self.settings.secret else ""}
        answer = await self._request("GET", "gettoken", params=params)
        if answer.get("errcode", 0) != 0 or "access_token" not in answer:
            # The secret never goes to the log; the error code says what to fix.
            log.error("WeCom refused the app credentials: errcode %s", answer.get("errcode"))
            raise Unreachable(f"gettoken errcode {answer.get('errcode')}", in_doubt=False)
        return answer["access_token"], int(answer.get("expires_in", 7200))
