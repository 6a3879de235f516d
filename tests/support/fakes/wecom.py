"""A faithful fake of the WeCom (企业微信) server APIs, and of WeCom's side of the callbacks.

The server half is an aiohttp app for pytest-aiohttp's ``aiohttp_server``: gettoken, message/send (text, markdown,
template_card), message/update_template_card, the group-robot webhook and the AI bot's response_url, with WeCom's
error codes, limits and silent drops (PROTOCOLS B.1–B.9, E). The client half encrypts and signs callbacks as WeCom
does (A.2–A.6), POSTs them to the bot under test with WeCom's 5 s deadline and retries, and opens passive replies.

It shares no code with ``bot/``: the crypto is wechatpy's, so the bot is checked against an independent peer.
Everything that reached the fake is kept in plain lists of dicts, in order, for assertions.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import re
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import aiohttp
import yarl
from aiohttp import web
from defusedxml import ElementTree
from wechatpy.enterprise.crypto import WeChatCrypto

from tests.support.fakes.clock import FakeClock  # noqa: F401  (re-exported for the tests)

# WeCom's errcodes (PROTOCOLS B.1, B.2, B.8 and the global error-code page).
OK = 0
BUSY = -1
INVALID_SECRET = 40001
INVALID_MEDIA_ID = 40007
INVALID_MSGTYPE = 40008
INVALID_CORPID = 40013
INVALID_TOKEN = 40014
INVALID_AGENTID = 40056
INVALID_PARAMETER = 40058
MISSING_TOKEN = 41001
MISSING_AGENTID = 41011
TOKEN_EXPIRED = 42001
EMPTY_CONTENT = 44004
FREQUENCY_LIMIT = 45009
DATA_FORMAT_ERROR = 47001  # a body that is not JSON; errmsg says "Warning: wrong json format."
ALL_RECIPIENTS_INVALID = 81013
INVALID_WEBHOOK = 93000
# Unconfirmed (PROTOCOLS F): the real codes are unknown, so both answer WeCom's generic "invalid parameter".
DUPLICATE_TASK_ID = 40058
INVALID_RESPONSE_CODE = 40058

_ERRMSG = {
    BUSY: "system busy", INVALID_SECRET: "invalid credential", INVALID_MSGTYPE: "invalid message type",
    INVALID_CORPID: "invalid corpid", INVALID_TOKEN: "invalid access_token", INVALID_AGENTID: "invalid agentid",
    INVALID_PARAMETER: "invalid parameter", MISSING_TOKEN: "access_token missing", MISSING_AGENTID: "missing agentid",
    TOKEN_EXPIRED: "access_token expired", EMPTY_CONTENT: "empty content", FREQUENCY_LIMIT: "api freq out of limit",
    DATA_FORMAT_ERROR: "Warning: wrong json format. data format error",
    ALL_RECIPIENTS_INVALID: "user & party & tag all invalid", INVALID_WEBHOOK: "invalid webhook url",
}

TOKEN_TTL = 7200
RESPONSE_CODE_TTL = 72 * 3600  # message/send and card-click codes (B.5)
AIBOT_RESPONSE_TTL = 3600  # the AI bot's response_url (B.9)
CARD_TYPES = {"text_notice", "news_notice", "button_interaction", "vote_interaction", "multiple_interaction"}
INTERACTIVE = {"button_interaction", "vote_interaction", "multiple_interaction"}
TASK_ID = re.compile(r"[0-9A-Za-z_\-@]{1,128}")  # ASCII only, so 128 characters are 128 bytes

APP_AES_KEY = "FakeWeComAppEncodingAESKeyForTests012345678"
AIBOT_AES_KEY = "FakeWeComAIBotEncodingAESKeyForTests0123456"


@dataclass
class CallbackResult:
    """What the bot answered to one callback, as WeCom saw it.

    Attributes:
        status: HTTP status of the answered attempt; None if no attempt was answered in time.
        text: the response body.
        reply: plaintext of an encrypted passive reply (A.6), after its signature was verified; else None.
        attempts: how many times the callback was delivered.
        response_code: the one-time code the callback carried (card clicks, AI-bot messages).
    """

    status: int | None
    text: str = ""
    reply: str | None = None
    attempts: int = 1
    response_code: str | None = None


class InvalidReply(AssertionError):
    """The bot answered with an encrypted passive reply that does not verify or decrypt."""


class FakeWeCom:
    """WeCom's servers for one corp with one self-built app, one AI bot and some group-robot webhooks.

    Start ``app()`` on an ephemeral port, then set ``base_url`` (this fake) and ``bot_url`` (the bot under test).

    Args:
        corp_id, agent_id, secret: the app's identity, checked by gettoken and message/send.
        token, encoding_aes_key: the app's callback crypto (receiveid = corp_id).
        aibot_id, aibot_token, aibot_encoding_aes_key: the AI bot's callback crypto (receiveid "").
        users: the userids that exist; others are invalid recipients.
        webhook_keys: the group robots that exist.
        clock: seconds since the epoch, for every TTL, window and timestamp (e.g. a ``FakeClock``).
        session: the client session for callbacks; by default the fake opens one and ``close()`` closes it.
        callback_timeout: how long a callback waits for the bot (WeCom: 5 s).
        retries: whether a callback the bot does not answer in time is delivered again, up to 3 times.
    """

    def __init__(
        self, *, corp_id: str = "wwfakecorp", agent_id: int = 1000002, secret: str = "fake-secret",
        token: str = "faketoken123", encoding_aes_key: str = APP_AES_KEY, aibot_id: str = "aibfakebot",
        aibot_token: str = "fakeaibot456", aibot_encoding_aes_key: str = AIBOT_AES_KEY,
        users: Iterable[str] = ("zhangsan", "lisi", "wangwu", "zhaoliu"), webhook_keys: Iterable[str] = ("group-key",),
        clock: Callable[[], float] = time.time, session: aiohttp.ClientSession | None = None,
        callback_timeout: float = 5.0, retries: bool = False,
    ) -> None:
        self.corp_id, self.agent_id, self.secret, self.aibot_id = corp_id, agent_id, secret, aibot_id
        self.users = {user.lower(): user for user in users}  # WeCom matches userids case-insensitively
        self.webhook_keys = set(webhook_keys)
        self.clock = clock
        self.app_crypto = WeChatCrypto(token, encoding_aes_key, corp_id)  # receiveid = corpid (A.1)
        self.aibot_crypto = WeChatCrypto(aibot_token, aibot_encoding_aes_key, "")  # receiveid "" for the AI bot
        self.base_url = ""  # this fake, e.g. "http://127.0.0.1:41234"; set by the test
        self.bot_url = ""  # the bot under test; set by the test
        self.app_callback_path = "/wecom/callback"
        self.aibot_callback_path = "/wecom/aibot"
        self.callback_timeout, self.retries = callback_timeout, retries  # A.5
        self.verify_timeout = 1.0  # the URL verification must be answered within 1 s (A.4)
        self._session, self._owns_session = session, session is None

        self.calls: list[dict] = []  # every API call: path, query, body, at
        self.delivered: list[dict] = []  # message/send, one record per recipient
        self.suppressed: list[dict] = []  # sends swallowed by enable_duplicate_check
        self.dropped: list[dict] = []  # accepted with errcode 0 but silently not delivered (rate limit, too long)
        self.updates: list[dict] = []  # update_template_card
        self.group_messages: list[dict] = []  # webhook/send
        self.aibot_replies: list[dict] = []  # aibot/response
        self.callbacks: list[dict] = []  # every delivery attempt to the bot
        self.card_state: dict[str, dict] = {}  # task_id -> the card as it now looks
        self.response_codes: dict[str, dict] = {}  # code -> task_id, users, issued_at, used
        self.aibot_codes: dict[str, dict] = {}  # code -> chatid, user, chattype, issued_at, used
        self.media: dict[str, tuple[bytes, str, str]] = {}  # media_id -> content, file name, content type (3 days)

        self._tokens: dict[str, dict] = {}  # token -> issued_at, state (ok | expired | revoked)
        self._task_ids: dict[str, str] = {}  # task_id -> card_type; unique within the app forever
        self._last_sent: dict[tuple, float] = {}  # duplicate-check key -> time
        self._sent_to: dict[str, deque] = defaultdict(deque)  # user -> delivery times within the last hour
        self._webhook_sent: dict[str, deque] = defaultdict(deque)  # key -> times within the last minute
        self._faults: list[dict] = []
        self._slow_calls: set[asyncio.Task] = set()  # strong references to shielded fault tasks
        self._msg_seq = 0
        self.latency = 0.0  # seconds every API call takes before it is served (a real network and server)
        self.in_flight = 0  # message/send calls being served now
        self.peak_in_flight = 0
        self.overlapping: list[str] = []  # users sent to while a send to them was still being served
        self._users_in_flight: set[str] = set()

    # ----- assertions and control -------------------------------------------------------------------------------

    @property
    def token_calls(self) -> int:
        """How many times gettoken was called."""
        return sum(1 for call in self.calls if call["path"].endswith("/gettoken"))

    def delivered_to(self, user: str) -> list[dict]:
        """Every message/send delivery to ``user``, in order."""
        return [record for record in self.delivered if record["user"] == user]

    def cards(self, task_id: str) -> list[dict]:
        """Every delivery of the card ``task_id``, one per recipient."""
        return [record for record in self.delivered if record["task_id"] == task_id]

    def expire_tokens(self) -> None:
        """Make every token issued so far answer 42001."""
        for issued in self._tokens.values():
            issued["state"] = "expired"

    def revoke_tokens(self) -> None:
        """Make every token issued so far answer 40014 (WeCom may invalidate tokens early)."""
        for issued in self._tokens.values():
            issued["state"] = "revoked"

    def fail_next(
        self, path_suffix: str, *, times: int = 1, status: int | None = None, errcode: int | None = None,
        delay: float | None = None,
    ) -> None:
        """Make the next ``times`` calls to an API fail; a failed call delivers nothing.

        Args:
            path_suffix: the end of the API path, e.g. ``"message/send"``.
            times: how many calls fail.
            status: answer with this HTTP status (e.g. 502) instead of JSON.
            errcode: answer with this errcode (e.g. -1 busy, 45009, 42001).
            delay: sleep this long first. Alone, the call is then served normally (a slow server: a client that
                gave up may still see it delivered).
        """
        self._faults.append({"suffix": path_suffix, "times": times, "status": status, "errcode": errcode,
                             "delay": delay})

    # ----- the server -------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp app serving WeCom's APIs under ``/cgi-bin/``."""
        app = web.Application(middlewares=[self._record_and_inject])
        app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        app.router.add_post("/cgi-bin/message/send", self._message_send)
        app.router.add_post("/cgi-bin/message/update_template_card", self._update_template_card)
        app.router.add_post("/cgi-bin/webhook/send", self._webhook_send)
        app.router.add_post("/cgi-bin/aibot/response", self._aibot_response)
        app.router.add_get("/cgi-bin/media/get", self._media_get)
        app.router.add_post("/cgi-bin/media/upload", self._media_upload)
        return app

    @web.middleware
    async def _record_and_inject(self, request: web.Request, handler) -> web.StreamResponse:
        # A multipart upload is parsed by its handler from the stream; its bytes are not logged.
        raw = b"" if request.path.endswith("media/upload") else await request.read()
        body = _json(raw)
        self.calls.append({"path": request.path, "query": dict(request.query),
                           "body": raw.decode(errors="replace") if body is None and raw else body, "at": self.clock()})
        if request.path.endswith("message/send"):
            return await self._served_in_flight(request, handler, body)
        return await self._served(request, handler)

    async def _served_in_flight(self, request: web.Request, handler, body) -> web.StreamResponse:
        """A message/send counted while it is served: how many at once, and whether one
        user's sends overlapped (a sender that keeps each recipient's messages in order never does)."""
        user = body.get("touser", "") if isinstance(body, dict) else ""
        if user in self._users_in_flight:
            self.overlapping.append(user)
        self._users_in_flight.add(user)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._served(request, handler)
        finally:
            self.in_flight -= 1
            self._users_in_flight.discard(user)

    async def _served(self, request: web.Request, handler) -> web.StreamResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = next((f for f in self._faults if f["times"] > 0 and request.path.endswith(f["suffix"])), None)
        if fault is None:
            return await handler(request)
        fault["times"] -= 1

        async def faulty() -> web.StreamResponse:
            if fault["delay"]:
                await asyncio.sleep(fault["delay"])
            if fault["status"]:
                return web.Response(status=fault["status"], text=f"<html><body>{fault['status']}</body></html>",
                                    content_type="text/html")
            if fault["errcode"] is not None:
                return _answer(fault["errcode"])
            return await handler(request)

        # Shielded: a test server cancels the handler when the client hangs up, but WeCom goes on and delivers.
        task = asyncio.ensure_future(faulty())
        self._slow_calls.add(task)
        task.add_done_callback(self._slow_calls.discard)
        return await asyncio.shield(task)

    async def _gettoken(self, request: web.Request) -> web.Response:
        if request.query.get("corpid") != self.corp_id:
            return _answer(INVALID_CORPID)
        if request.query.get("corpsecret") != self.secret:
            return _answer(INVALID_SECRET)
        token = secrets.token_urlsafe(96)  # a new one each call: the bot must not depend on either behaviour (B.1)
        self._tokens[token] = {"issued_at": self.clock(), "state": "ok"}
        return _answer(OK, access_token=token, expires_in=TOKEN_TTL)

    async def _media_get(self, request: web.Request) -> web.StreamResponse:
        """Temporary media (素材管理 → 获取临时素材): the bytes with a Content-Disposition
        file name; a JSON error (40007 invalid media_id) otherwise."""
        refused = self._token_problem(request.query.get("access_token"))
        if refused is not None:
            return refused
        found = self.media.get(request.query.get("media_id", ""))
        if found is None:
            return _answer(INVALID_MEDIA_ID)
        content, name, content_type = found
        return web.Response(body=content, content_type=content_type,
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def _media_upload(self, request: web.Request) -> web.Response:
        """Temporary media upload (multipart field ``media``): a media_id valid 3 days."""
        refused = self._token_problem(request.query.get("access_token"))
        if refused is not None:
            return refused
        form = await request.post()
        upload = form.get("media")
        if not hasattr(upload, "file"):
            return _answer(INVALID_PARAMETER, "no media")
        media_id = f"upload-{secrets.token_hex(8)}"
        self.media[media_id] = (upload.file.read(), upload.filename or "", upload.content_type)
        return _answer(OK, type=request.query.get("type", "image"), media_id=media_id,
                       created_at=str(int(self.clock())))

    def _token_problem(self, token: str | None) -> web.Response | None:
        issued = self._tokens.get(token or "")
        if not token:
            return _answer(MISSING_TOKEN)
        if issued is None or issued["state"] == "revoked":
            return _answer(INVALID_TOKEN)
        if issued["state"] == "expired" or self.clock() - issued["issued_at"] >= TOKEN_TTL:
            return _answer(TOKEN_EXPIRED)
        return None

    async def _checked_body(self, request: web.Request) -> dict | web.Response:
        """The JSON body of an app API call, or WeCom's refusal of the token, the body or the agentid."""
        refused = self._token_problem(request.query.get("access_token"))
        if refused is not None:
            return refused
        body = _json(await request.read())
        if not isinstance(body, dict):
            return _answer(DATA_FORMAT_ERROR)
        if body.get("agentid") in (None, ""):
            return _answer(MISSING_AGENTID)
        if str(body["agentid"]) != str(self.agent_id):
            return _answer(INVALID_AGENTID)
        return body

    async def _message_send(self, request: web.Request) -> web.Response:
        body = await self._checked_body(request)
        if isinstance(body, web.Response):
            return body
        message = _message(body, markdown_limit=2048)
        if isinstance(message, web.Response):
            return message
        msgtype, payload, content, card, too_long = message
        task_id = card and card.get("task_id")
        if task_id in self._task_ids:
            return _answer(DUPLICATE_TASK_ID, f"task_id {task_id} exists")
        touser = str(body.get("touser", ""))
        names = [name for name in touser.split("|") if name]
        if len(names) > 1000:
            return _answer(INVALID_PARAMETER, "touser exceeds 1000")
        users, invalid = self._recipients(names)
        answer = {"invaliduser": "|".join(invalid), "invalidparty": str(body.get("toparty", "")),
                  "invalidtag": str(body.get("totag", ""))}
        if not users:
            return _answer(ALL_RECIPIENTS_INVALID, **answer)

        now = self.clock()
        self._msg_seq += 1
        answer |= {"unlicenseduser": "", "msgid": f"fakemsg{self._msg_seq}-{secrets.token_hex(8)}"}
        if task_id:
            self._task_ids[task_id] = card["card_type"]
            self.card_state[task_id] = card
        if card and card["card_type"] in INTERACTIVE:
            answer["response_code"] = self._issue_response_code(task_id, users)
        record = {"api": "message/send", "msgtype": msgtype, "content": content, "card": card, "task_id": task_id,
                  "msgid": answer["msgid"], "at": now}
        if too_long:  # errcode 0, not shown: a silent trap worth catching in tests
            self.dropped += [{**record, "user": user, "reason": "too long"} for user in users]
            return _answer(OK, "Warning: wrong json format. content exceed max length", **answer)

        key = (msgtype, json.dumps(payload, sort_keys=True, ensure_ascii=False), touser)
        interval = min(int(body.get("duplicate_check_interval") or 1800), 14400)
        checked = str(body.get("enable_duplicate_check")) in ("1", "True")
        if checked and now - self._last_sent.get(key, -math.inf) < interval:
            self.suppressed.append({**record, "users": users})
            return _answer(OK, **answer)
        self._last_sent[key] = now
        for user in users:
            if self._over_rate_limit(user, now):  # 30/min and 1000/h per (app, member), excess dropped (B.2)
                self.dropped.append({**record, "user": user, "reason": "rate limit"})
            else:
                self._sent_to[user].append(now)
                self.delivered.append({**record, "user": user})
        return _answer(OK, **answer)

    def _recipients(self, names: list[str]) -> tuple[list[str], list[str]]:
        """The known users among ``names`` (deduplicated) and the unknown ones, lower-cased as WeCom reports them."""
        if names == ["@all"]:
            return list(self.users.values()), []
        known = list(dict.fromkeys(self.users[name.lower()] for name in names if name.lower() in self.users))
        return known, [name.lower() for name in names if name.lower() not in self.users]

    def _over_rate_limit(self, user: str, now: float) -> bool:
        times = self._sent_to[user]
        while times and now - times[0] >= 3600:
            times.popleft()
        return len(times) >= 1000 or sum(1 for at in times if now - at < 60) >= 30

    def _issue_response_code(self, task_id: str, users: list[str]) -> str:
        code = secrets.token_urlsafe(32)
        self.response_codes[code] = {"task_id": task_id, "users": list(users), "issued_at": self.clock(), "used": False}
        return code

    async def _update_template_card(self, request: web.Request) -> web.Response:
        body = await self._checked_body(request)
        if isinstance(body, web.Response):
            return body
        now, code = self.clock(), str(body.get("response_code", ""))
        entry = self.response_codes.get(code)
        if entry is None or entry["used"] or now - entry["issued_at"] >= RESPONSE_CODE_TTL:
            return _answer(INVALID_RESPONSE_CODE, "invalid response_code")
        button, card = body.get("button"), body.get("template_card")
        if (button is None) == (card is None):
            return _answer(INVALID_PARAMETER, "exactly one of button and template_card")
        task_id = entry["task_id"]
        if button is not None:
            name = button.get("replace_name") if isinstance(button, dict) else None
            if not name or self._task_ids.get(task_id) not in INTERACTIVE:
                return _answer(INVALID_PARAMETER, "invalid button")
            state = {**self.card_state.get(task_id, {}), "replaced": name}
        else:
            if problem := _card_problem(card):
                return _answer(INVALID_PARAMETER, problem)
            state = card
        if str(body.get("atall")) == "1":
            userids, invalid = entry["users"], []
        else:
            userids, invalid = self._recipients([str(u) for u in body.get("userids") or []])
            if not userids:
                return _answer(ALL_RECIPIENTS_INVALID, invaliduser=invalid)
        entry["used"] = True
        self.card_state[task_id] = state
        self.updates.append({"response_code": code, "task_id": task_id, "button": button, "template_card": card,
                             "userids": userids, "at": now})
        return _answer(OK, invaliduser=invalid)

    async def _webhook_send(self, request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        if key not in self.webhook_keys:
            return _answer(INVALID_WEBHOOK)
        body = _json(await request.read())
        if not isinstance(body, dict):
            return _answer(DATA_FORMAT_ERROR)
        message = _message(body, markdown_limit=4096, card_types={"text_notice", "news_notice"})
        if isinstance(message, web.Response):
            return message
        msgtype, payload, content, card, too_long = message
        now, sent = self.clock(), self._webhook_sent[key]
        while sent and now - sent[0] >= 60:
            sent.popleft()
        if len(sent) >= 20:  # 20/min per robot, in a conservative sliding window (B.8)
            return _answer(FREQUENCY_LIMIT)
        record = {"api": "webhook/send", "key": key, "msgtype": msgtype, "content": content, "card": card,
                  "mentioned_list": payload.get("mentioned_list", []), "at": now}
        if too_long:
            self.dropped.append({**record, "reason": "too long"})
            return _answer(OK, "Warning: wrong json format. content exceed max length")
        sent.append(now)
        self.group_messages.append(record)
        return _answer(OK)

    async def _aibot_response(self, request: web.Request) -> web.Response:
        now, code = self.clock(), request.query.get("response_code", "")
        entry = self.aibot_codes.get(code)
        if entry is None or entry["used"] or now - entry["issued_at"] >= AIBOT_RESPONSE_TTL:
            return _answer(INVALID_RESPONSE_CODE, "invalid response_code")
        body = _json(await request.read())
        if not isinstance(body, dict):
            return _answer(DATA_FORMAT_ERROR)
        message = _message(body)
        if isinstance(message, web.Response):
            return message
        msgtype, _, content, card, _ = message
        entry["used"] = True
        self.aibot_replies.append({"response_code": code, "chatid": entry["chatid"], "user": entry["user"],
                                   "chattype": entry["chattype"], "msgtype": msgtype, "content": content,
                                   "card": card, "at": now})
        return _answer(OK)

    # ----- the callbacks ----------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the client session if this fake opened it, and stop calls still sleeping in a fault."""
        for task in list(self._slow_calls):
            task.cancel()
        if self._owns_session and self._session is not None:
            await self._session.close()

    async def verify_url(self, echo_plain: str = "1288432023552776189", *, aibot: bool = False) -> CallbackResult:
        """The GET with which WeCom checks a callback URL (A.4); the bot must echo ``echo_plain`` within 1 s."""
        echostr, params = self._seal(self.aibot_crypto if aibot else self.app_crypto, echo_plain)
        path = self.aibot_callback_path if aibot else self.app_callback_path
        return await self._deliver("GET", path, {**params, "echostr": echostr}, retries=False,
                                   timeout=self.verify_timeout)

    async def send_text(
        self, user: str, content: str, *, msg_id: int | str | None = None, create_time: int | None = None,
        retries: bool | None = None,
    ) -> CallbackResult:
        """``user`` types ``content`` in the app's 1:1 conversation (A.5)."""
        created = int(self.clock() if create_time is None else create_time)
        msg_id = secrets.randbelow(9 * 10**18) + 10**18 if msg_id is None else msg_id
        return await self.deliver_app_xml(
            f"<xml><ToUserName>{_cdata(self.corp_id)}</ToUserName><FromUserName>{_cdata(user)}</FromUserName>"
            f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content>{_cdata(content)}</Content><MsgId>{msg_id}</MsgId><AgentID>{self.agent_id}</AgentID></xml>",
            retries=retries,
        )

    async def send_media(self, user: str, kind: str, content: bytes, *, file_name: str = "photo.jpg",
                         content_type: str = "image/jpeg", msg_id: int | None = None) -> CallbackResult:
        """``user`` sends a photo, video, voice message or file to the app: WeCom keeps it as
        temporary media and delivers its MediaId (A.5)."""
        media_id = f"media-{secrets.token_hex(8)}"
        self.media[media_id] = (content, file_name, content_type)
        msg_id = secrets.randbelow(9 * 10**18) + 10**18 if msg_id is None else msg_id
        extra = f"<FileName>{_cdata(file_name)}</FileName>" if kind == "file" else ""
        return await self.deliver_app_xml(
            f"<xml><ToUserName>{_cdata(self.corp_id)}</ToUserName><FromUserName>{_cdata(user)}</FromUserName>"
            f"<CreateTime>{int(self.clock())}</CreateTime><MsgType>{_cdata(kind)}</MsgType>"
            f"<MediaId>{_cdata(media_id)}</MediaId>{extra}<MsgId>{msg_id}</MsgId><AgentID>{self.agent_id}</AgentID>"
            "</xml>")

    async def send_location(self, user: str, latitude: str, longitude: str, label: str, *, scale: int = 15,
                            msg_id: int | None = None) -> CallbackResult:
        """``user`` sends a location (位置消息) in the app's 1:1 conversation: Location_X is the
        latitude, Location_Y the longitude, Label its description (WeCom 接收消息 › 消息格式)."""
        msg_id = secrets.randbelow(9 * 10**18) + 10**18 if msg_id is None else msg_id
        return await self.deliver_app_xml(
            f"<xml><ToUserName>{_cdata(self.corp_id)}</ToUserName><FromUserName>{_cdata(user)}</FromUserName>"
            f"<CreateTime>{int(self.clock())}</CreateTime><MsgType><![CDATA[location]]></MsgType>"
            f"<Location_X>{latitude}</Location_X><Location_Y>{longitude}</Location_Y><Scale>{scale}</Scale>"
            f"<Label>{_cdata(label)}</Label><MsgId>{msg_id}</MsgId><AgentID>{self.agent_id}</AgentID>"
            "<AppType><![CDATA[wxwork]]></AppType></xml>")

    async def click(
        self, user: str, task_id: str, event_key: str, *, selections: dict[str, list[str]] | None = None,
        card_type: str | None = None, retries: bool | None = None,
    ) -> CallbackResult:
        """``user`` clicks the button (or submit button, or menu entry) ``event_key`` on card ``task_id`` (B.4).

        The event carries a fresh ResponseCode, good once for update_template_card. Like WeCom, only a recipient of
        the card can click, only on one of its keys, and not once the button was greyed out.

        Raises:
            LookupError: ``user`` never received the card.
            ValueError: the card has no such key, or it is greyed out.
        """
        received = [record["card"] for record in self.cards(task_id) if record["user"] == user]
        if not received:
            raise LookupError(f"{user} never received a card with task_id {task_id!r}")
        card = self.card_state.get(task_id, received[-1])
        if "replaced" in card or card.get("replace_text"):
            raise ValueError(f"card {task_id!r} is greyed out")
        if event_key not in _card_keys(card) | _card_keys(received[-1]):
            raise ValueError(f"card {task_id!r} has no key {event_key!r}")
        code = self._issue_response_code(task_id, [user])
        items = "".join(
            f"<SelectedItem><QuestionKey>{_cdata(question)}</QuestionKey><OptionIds>"
            + "".join(f"<OptionId>{_cdata(option)}</OptionId>" for option in options)
            + "</OptionIds></SelectedItem>"
            for question, options in (selections or {}).items()
        )
        result = await self.deliver_app_xml(
            f"<xml><ToUserName>{_cdata(self.corp_id)}</ToUserName><FromUserName>{_cdata(user)}</FromUserName>"
            f"<CreateTime>{int(self.clock())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[template_card_event]]></Event><EventKey>{_cdata(event_key)}</EventKey>"
            f"<TaskId>{_cdata(task_id)}</TaskId><CardType>{_cdata(card_type or card.get('card_type'))}</CardType>"
            f"<ResponseCode>{_cdata(code)}</ResponseCode><AgentID>{self.agent_id}</AgentID>"
            + (f"<SelectedItems>{items}</SelectedItems>" if selections else "") + "</xml>",
            retries=retries,
        )
        result.response_code = code
        return result

    async def aibot_text(
        self, user: str, chatid: str | None, content: str, *, chattype: str = "group", msgid: str | None = None,
        retries: bool | None = None,
    ) -> CallbackResult:
        """``user`` @-mentions the AI bot in group ``chatid`` (or writes to it 1:1: chattype "single") (B.9).

        The message carries a response_url on this fake, good once within an hour.
        """
        code = secrets.token_urlsafe(32)
        self.aibot_codes[code] = {"chatid": chatid, "user": user, "chattype": chattype, "issued_at": self.clock(),
                                  "used": False}
        message = {"msgid": msgid or secrets.token_hex(16), "aibotid": self.aibot_id, "chatid": chatid,
                   "chattype": chattype, "from": {"userid": user},
                   "response_url": f"{self.base_url}/cgi-bin/aibot/response?response_code={code}",
                   "msgtype": "text", "text": {"content": content}}
        if chatid is None:
            del message["chatid"]
        result = await self.deliver_aibot_json(message, retries=retries)
        result.response_code = code
        return result

    def build_app_message(
        self, plaintext: str, *, timestamp: int | None = None, nonce: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """The query parameters and the XML body with which WeCom delivers ``plaintext`` to the app (A.5)."""
        encrypt, params = self._seal(self.app_crypto, plaintext, timestamp, nonce)
        body = (f"<xml><ToUserName>{_cdata(self.corp_id)}</ToUserName><Encrypt>{_cdata(encrypt)}</Encrypt>"
                f"<AgentID>{_cdata(self.agent_id)}</AgentID></xml>")
        return params, body.encode()

    def build_aibot_message(
        self, plaintext: str | dict, *, timestamp: int | None = None, nonce: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """The query parameters and the JSON body with which WeCom delivers ``plaintext`` to the AI bot (B.9)."""
        if isinstance(plaintext, dict):
            plaintext = json.dumps(plaintext, ensure_ascii=False)
        encrypt, params = self._seal(self.aibot_crypto, plaintext, timestamp, nonce)
        return params, json.dumps({"encrypt": encrypt}).encode()

    async def deliver_app_xml(self, plaintext: str, *, retries: bool | None = None) -> CallbackResult:
        """Deliver any app message or event (decrypted XML) to the bot."""
        params, body = self.build_app_message(plaintext)
        return await self.post_raw(self.app_callback_path, params=params, body=body, retries=retries)

    async def deliver_aibot_json(self, plaintext: str | dict, *, retries: bool | None = None) -> CallbackResult:
        """Deliver any AI-bot message or event (decrypted JSON) to the bot."""
        params, body = self.build_aibot_message(plaintext)
        return await self.post_raw(self.aibot_callback_path, params=params, body=body, retries=retries)

    async def post_raw(
        self, path: str, *, params: dict[str, str], body: bytes, headers: dict[str, str] | None = None,
        retries: bool | None = None,
    ) -> CallbackResult:
        """POST exactly this to the bot, as WeCom would; a reply to the AI-bot path is opened as JSON (A.6).

        Raises:
            InvalidReply: the bot's encrypted passive reply does not verify or decrypt.
        """
        aibot = path == self.aibot_callback_path
        headers = headers or {"Content-Type": "application/json" if aibot else "text/xml"}
        result = await self._deliver("POST", path, params, body, headers, retries=retries)
        self._open_reply(result, self.aibot_crypto if aibot else self.app_crypto, as_json=aibot)
        return result

    def _seal(self, crypto: WeChatCrypto, plaintext: str, timestamp: int | None = None,
              nonce: str | None = None) -> tuple[str, dict[str, str]]:
        """Encrypt and sign ``plaintext`` with wechatpy: the Encrypt text and the signed query parameters."""
        timestamp = str(int(self.clock()) if timestamp is None else timestamp)
        nonce = nonce or str(secrets.randbelow(10**10))
        sealed = ElementTree.fromstring(crypto.encrypt_message(plaintext, nonce, timestamp))
        return sealed.findtext("Encrypt"), {"msg_signature": sealed.findtext("MsgSignature"), "timestamp": timestamp,
                                            "nonce": nonce}

    async def _deliver(
        self, method: str, path: str, params: dict[str, str], body: bytes = b"", headers: dict | None = None, *,
        retries: bool | None = None, timeout: float | None = None,
    ) -> CallbackResult:
        # yarl would read a raw '+' in the query as a space (A.4), so percent-encode everything ourselves.
        url = yarl.URL(f"{self.bot_url}{path}?{urlencode(params, safe='', quote_via=quote)}", encoded=True)
        attempts = 3 if (self.retries if retries is None else retries) else 1
        if self._session is None:
            self._session = aiohttp.ClientSession()
        for attempt in range(1, attempts + 1):
            self.callbacks.append({"method": method, "path": path, "params": dict(params), "body": body,
                                   "attempt": attempt, "at": self.clock()})
            try:
                async with asyncio.timeout(timeout or self.callback_timeout):
                    async with self._session.request(method, url, data=body or None, headers=headers) as response:
                        return CallbackResult(response.status, await response.text(), attempts=attempt)
            except (TimeoutError, aiohttp.ClientConnectionError):
                continue  # WeCom drops the connection and tries again with the same body (A.5)
        return CallbackResult(None, attempts=attempts)

    @staticmethod
    def _open_reply(result: CallbackResult, crypto: WeChatCrypto, *, as_json: bool) -> None:
        text = result.text.strip()
        if result.status != 200 or not text:
            return
        try:
            if as_json:
                sealed = _json(text.encode())
                if not isinstance(sealed, dict) or "encrypt" not in sealed:
                    return
                fields = [sealed.get(name) for name in ("encrypt", "msgsignature", "timestamp", "nonce")]
            else:
                if "<Encrypt>" not in text:
                    return
                root = ElementTree.fromstring(text)
                fields = [root.findtext(name) for name in ("Encrypt", "MsgSignature", "TimeStamp", "Nonce")]
            encrypt, signature, timestamp, nonce = fields
            result.reply = crypto.decrypt_message({"Encrypt": encrypt}, signature, str(timestamp), nonce)
        except Exception as error:  # wechatpy raises a mix of its own and low-level errors
            raise InvalidReply(f"the bot's passive reply does not verify: {error!r}: {text}") from error


def _answer(errcode: int, detail: str | None = None, **fields) -> web.Response:
    """A WeCom JSON answer. Errors carry WeCom's hint suffix, so callers can only branch on errcode."""
    errmsg = _ERRMSG.get(errcode, "ok" if errcode == OK else "unknown error")
    if detail:
        errmsg = f"{errmsg}. {detail}" if errcode == OK else f"{errmsg}, {detail}"
    if errcode != OK:
        errmsg += (f", hint: [{secrets.token_hex(8)}], from ip: 127.0.0.1, "
                   f"more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}")
    return web.json_response({"errcode": errcode, "errmsg": errmsg, **fields})


def _message(body: dict, *, markdown_limit: float = math.inf, card_types: set[str] = CARD_TYPES
             ) -> tuple[str, dict, str | None, dict | None, bool] | web.Response:
    """A text, markdown or template_card body as (msgtype, payload, content, card, too long), or WeCom's refusal."""
    msgtype = body.get("msgtype")
    if msgtype not in ("text", "markdown", "template_card", "image", "file"):
        return _answer(INVALID_MSGTYPE)
    payload = body.get(msgtype)
    if not isinstance(payload, dict):
        return _answer(INVALID_PARAMETER, f"missing {msgtype}")
    if msgtype == "file":  # message/send only: a media_id from media/upload (type file)
        if "media_id" not in payload:
            return _answer(INVALID_PARAMETER, "missing media_id")
        return msgtype, payload, None, None, False
    if msgtype == "image":  # message/send: a media_id from media/upload; webhook: base64 + md5 (≤ 2 MB)
        if "media_id" in payload:
            return msgtype, payload, None, None, False
        try:
            data = base64.b64decode(payload.get("base64", ""), validate=True)
        except (ValueError, TypeError):
            return _answer(INVALID_PARAMETER, "bad base64")
        if not data or hashlib.md5(data).hexdigest() != payload.get("md5") or len(data) > 2 * 1024 * 1024:
            return _answer(INVALID_PARAMETER, "image md5 or size")
        return msgtype, {"md5": payload["md5"]}, None, None, False
    if msgtype == "template_card":
        problem = _card_problem(payload)
        if problem is None and payload["card_type"] not in card_types:
            problem = f"card_type {payload['card_type']} not allowed here"
        return _answer(INVALID_PARAMETER, problem) if problem else (msgtype, payload, None, payload, False)
    content = payload.get("content")
    if not isinstance(content, str) or not content:
        return _answer(EMPTY_CONTENT)
    if msgtype == "text":  # WeCom cuts long text silently (B.2)
        return msgtype, payload, _truncate(content, 2048), None, False
    return msgtype, payload, content, None, len(content.encode()) > markdown_limit


def _json(raw: bytes) -> object | None:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes, on a character boundary."""
    return text.encode()[:limit].decode(errors="ignore")


def _cdata(text: object) -> str:
    return "<![CDATA[" + str(text).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _card_keys(card: dict) -> set[str]:
    """The keys a click on ``card`` can send: its callback buttons, submit button and menu entries."""
    keys = {button.get("key") for button in card.get("button_list", []) if button.get("type", 0) == 0}
    keys |= {action.get("key") for action in (card.get("action_menu") or {}).get("action_list", [])}
    keys.add((card.get("submit_button") or {}).get("key"))
    return keys - {None}


def _card_problem(card: object) -> str | None:
    """Why WeCom would refuse this template_card (B.3), or None."""
    try:
        card_type = card.get("card_type")
        if card_type not in CARD_TYPES:
            return f"invalid card_type {card_type!r}"
        task_id = card.get("task_id")
        if task_id is None and (card_type in INTERACTIVE or "action_menu" in card):
            return "task_id required"
        if task_id is not None and not (isinstance(task_id, str) and TASK_ID.fullmatch(task_id)):
            return "invalid task_id"
        if card_type in ("text_notice", "news_notice") and "card_action" not in card:
            return "card_action required"
        if card_type == "news_notice" and "card_image" not in card and "image_text_area" not in card:
            return "card_image or image_text_area required"
        buttons = card.get("button_list", [])
        keys = [button.get("key") for button in buttons if button.get("type", 0) == 0]
        if len(buttons) > 6 or not all(isinstance(key, str) and key for key in keys):
            return "invalid button_list"
        if len(set(keys)) != len(keys) or any(len(key.encode()) > 1024 for key in keys):
            return "button keys must be unique and at most 1024 bytes"
        for field, most in (("button_selection", 10), ("checkbox", 20)):
            if field in card and not 1 <= len(card[field].get("option_list", [])) <= most:
                return f"{field} needs 1 to {most} options"
        selects = card.get("select_list", [])
        if len(selects) > 3 or any(not 1 <= len(select.get("option_list", [])) <= 10 for select in selects):
            return "invalid select_list"
    except (AttributeError, TypeError):
        return "malformed template_card"
    return None
