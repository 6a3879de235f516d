"""The DingTalk OpenAPI (PROTOCOLS.md C.3–C.5): one access token per app, shared through
the database by every instance (``bot.chat.access_token``), sent as the
``x-acs-dingtalk-access-token`` header on ``api_base`` and as ``access_token`` on the
legacy ``oapi_base``; a 401 means "fetch a new token" (as the official SDK does).

Errors are classified here: ``Unreachable`` (``bot.chat.transport``: no answer, or a 5xx: DingTalk may
or may not have acted) versus ``Refused`` (a 4xx with DingTalk's ``code``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
from sqlalchemy import Engine

from bot.chat.access_token import SharedAccessToken, TokenUnavailable
from bot.chat.events import MediaGone
from bot.chat.media import MEDIA_TIMEOUT, read_media
from bot.chat.transport import Unreachable, transport_failures
from bot.settings import DingTalkSettings

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=10)  # also bounds how late a claimed send can land (rate limits)


class Refused(Exception):
    """DingTalk answered 4xx: ``status`` and its error ``code`` (e.g. ``invalidParameter``)."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"HTTP {status} {code}")
        self.status, self.code, self.message = status, code, message


class DingTalkAPI:
    """Calls to ``[dingtalk] api_base`` and ``oapi_base`` with the app's token."""

    def __init__(self, settings: DingTalkSettings, engine: Engine, owner: str, http: aiohttp.ClientSession) -> None:
        self.settings, self.engine, self.http = settings, engine, http
        self.base = settings.api_base.rstrip("/")
        self.oapi = settings.oapi_base.rstrip("/")
        self.robot_code = settings.robot_code or settings.app_key
        self._token = SharedAccessToken(engine, f"dingtalk:{settings.app_key}", owner, self._fetch_token)

    async def call(self, method: str, path: str, body: dict) -> dict:
        """An OpenAPI call (``/v1.0/…``); on a 401, a new token and one more try."""
        for attempt in (1, 2):
            token = await self.token()
            try:
                return await self._request(method, f"{self.base}{path}", json=body,
                                           headers={"x-acs-dingtalk-access-token": token})
            except Refused as exc:
                if exc.status == 401 and attempt == 1:
                    await self._token.forget(token)
                    continue
                raise
        raise AssertionError("unreachable")

    async def post_url(self, url: str, body: dict) -> dict:
        """POST JSON to a URL DingTalk gave us (a sessionWebhook; no token)."""
        return await self._request("POST", url, json=body)

    async def media(self, download_code: str) -> tuple[bytes, str, str]:
        """A file a user sent the robot (下载机器人接收消息的文件内容): content, name, type."""
        try:
            answer = await self.call("POST", "/v1.0/robot/messageFiles/download",
                                     {"downloadCode": download_code, "robotCode": self.robot_code})
        except Refused as exc:
            raise MediaGone(exc.code) from None
        url = answer.get("downloadUrl")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise MediaGone("no download URL")
        try:
            async with self.http.get(url, timeout=MEDIA_TIMEOUT) as response:
                if response.status >= 500:
                    raise Unreachable(f"HTTP {response.status}", in_doubt=False)
                if response.status != 200:
                    raise MediaGone(f"HTTP {response.status}")
                return await read_media(response)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Unreachable(type(exc).__name__, in_doubt=False) from None

    async def upload_image(self, data: bytes, name: str, content_type: str, kind: str = "image") -> str:
        """Media upload on the legacy API (media/upload), for sampleImageMsg (``kind`` image)
        or sampleFile (``kind`` file); its media_id."""
        for attempt in (1, 2):
            token = await self.token()
            form = aiohttp.FormData()
            form.add_field("media", data, filename=name, content_type=content_type)
            answer = await self._request("POST", f"{self.oapi}/media/upload",
                                         params={"access_token": token, "type": kind}, data=form)
            code = answer.get("errcode", 0)
            if code in (40014, 42001, 88) and attempt == 1:  # the token was refused
                await self._token.forget(token)
                continue
            if code != 0 or not answer.get("media_id"):
                raise Unreachable(f"media/upload errcode {code}", in_doubt=False)
            return answer["media_id"]
        raise Unreachable("access token refused twice", in_doubt=False)

    async def token(self) -> str:
        try:
            return await self._token.get()
        except TokenUnavailable:
            raise Unreachable("access token not available", in_doubt=False) from None

    async def _fetch_token(self) -> tuple[str, int]:
        secret = self.settings.app_secret.get_secret_value() if self.settings.app_secret else ""
        try:
            answer = await self._request("POST", f"{self.base}/v1.0/oauth2/accessToken",
                                         json={"appKey": self.settings.app_key, "appSecret": secret})
        except Refused as exc:
            # The secret never goes to the log; the code says what to fix.
            log.error("DingTalk refused the app credentials: %s", exc.code)
            raise Unreachable(f"accessToken {exc.code}", in_doubt=False) from None
        if not answer.get("accessToken"):
            raise Unreachable("accessToken missing in the answer", in_doubt=False)
        return answer["accessToken"], int(answer.get("expireIn", 7200))

    async def _request(self, method: str, url: str, **kwargs: Any) -> dict:
        with transport_failures():
            async with self.http.request(method, url, timeout=TIMEOUT, **kwargs) as response:
                if response.status >= 500:
                    raise Unreachable(f"HTTP {response.status}", in_doubt=True)
                raw = await response.read()
                try:
                    answer = json.loads(raw) if raw else {}
                except ValueError:
                    answer = None
                if response.status >= 400:
                    answer = answer if isinstance(answer, dict) else {}
                    raise Refused(response.status, str(answer.get("code", "")), str(answer.get("message", "")))
                if not isinstance(answer, dict):
                    raise Unreachable("answer is not a JSON object", in_doubt=True)
                return answer
