"""A faithful fake of the DingTalk (钉钉) server APIs, and of DingTalk's side of the callbacks.

The server half is one aiohttp app for pytest-aiohttp's ``aiohttp_server``. It serves the paths of both hosts, so the
bot is configured with api_base = oapi_base = ``base_url``:

- api.dingtalk.com: oauth2/accessToken, the robot's 1:1 batchSend and group send, interactive cards (create,
  deliver, createAndDeliver, update, callbacks/register), message-file downloads and the Stream gateway
  (connections/open and its WebSocket), with DingTalk's 4xx JSON errors, limits, and 200 answers that did not
  deliver (PROTOCOLS C.3–C.5, C.7);
- oapi.dingtalk.com: media/upload and the session webhooks of received messages (C.1), answering with errcodes.

The client half sends what DingTalk sends: robot messages, either POSTed with ``timestamp``/``sign`` headers (C.1) or
pushed as Stream frames (C.7); card clicks (C.5); and encrypted event pushes (C.6, with wechatpy's crypto).

It shares no code with ``bot/``, so the bot is checked against an independent peer.
Everything that reached the fake is kept in plain lists of dicts, in order, for assertions.

The card template ``card_template_id`` belongs to this project, and the bot fills the template's variables. They go in
``cardParamMap``, every value a string; a user's private data is merged over them for that user.

    title    the heading, plain text
    body     markdown
    fields   "" or a JSON list of {"label": str, "value": str}
    buttons  "" or a JSON list of {"id": str, "text": str, "style": "primary" | "default" | "danger",
             "params": {str: str}}, ids unique; style defaults to "default" and params to {}. A click sends
             actionIds [id] and the button's params.
    choice   "" or JSON {"key": str, "title": str, "options": [{"id": str, "text": str}]}: one pick shown above the
             buttons; the id of the option picked reaches the bot as params[key] along with the click.
    closed   "" or a text shown instead of the buttons: while it is non-empty the buttons are greyed out.
    link     "" or a URL that the heading opens.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import secrets
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from defusedxml import ElementTree
from wechatpy.enterprise.crypto import WeChatCrypto

from tests.support.fakes.clock import FakeClock  # noqa: F401  (re-exported for the tests)

# The new APIs answer errors with HTTP 4xx and {"code", "message", "requestid"} (C.3). Only InvalidAuthentication is
# documented; the other codes are unconfirmed stand-ins in DingTalk's style, so the bot should branch on the status.
INVALID_AUTH = "InvalidAuthentication"  # 401: a missing, unknown or expired token
INVALID_CLIENT = "invalidClientIdOrSecret"  # 400: wrong appKey/appSecret (accessToken, gateway)
INVALID_PARAMETER = "invalidParameter"  # 400: the message says which field
THROTTLED = "Forbidden.AccessDenied.QpsLimitForApi"  # 403
DUPLICATE_OUT_TRACK_ID = "param.outTrackIdDuplicated"  # the real code for a reused outTrackId is unconfirmed
UNKNOWN_OUT_TRACK_ID = "param.outTrackIdNotExist"
ROUTE_KEY_EXISTS = "param.callbackRouteKeyExists"

# The oapi host answers HTTP 200 with {"errcode", "errmsg"}.
OK = 0
OAPI_INVALID_TOKEN = 40014  # errmsg "不合法的access_token"; also given for an expired token here
OAPI_BAD_BODY = 40035  # errmsg "缺少参数 json" (the custom robot's answer); unconfirmed for sendBySession
SESSION_EXPIRED = 300001  # unconfirmed: the errcode for an unknown or expired sessionWebhook

TOKEN_TTL = 7200  # seconds (C.3)
TICKET_TTL = 90  # a Stream ticket is good once, for 90 s (C.7)
SESSION_TTL_MS = 5_400_000  # sessionWebhookExpiredTime = createAt + 90 min (C.1)
BATCH_USERS = 20  # userIds per batchSend (C.4)
GROUP_LIMIT_PER_MINUTE = 20  # group sends per conversation
ROBOT_TOPIC = "/v1.0/im/bot/messages/get"
CARD_TOPIC = "/v1.0/card/instances/callback"
SPACE_PREFIX = "dtv1.card//"
SPACE_TYPES = ("IM_ROBOT", "IM_GROUP")
BUTTON_STYLES = ("primary", "default", "danger")
# msgKey -> the msgParam fields it needs, and which one is the message's text (C.4).
SAMPLE_MESSAGES = {
    "sampleText": (("content",), "content"),
    "sampleMarkdown": (("title", "text"), "text"),
    "sampleImageMsg": (("photoURL",), None),
    "sampleFile": (("mediaId", "fileName", "fileType"), None),
    "sampleLink": (("text", "title", "picUrl", "messageUrl"), "text"),
    "sampleActionCard": (("title", "text", "singleTitle", "singleURL"), "text"),
}
MEDIA_KINDS = ("picture", "video", "file")


@dataclass
class CallbackResult:
    """What the bot answered to one callback, as DingTalk saw it.

    Attributes:
        status: the HTTP status, or the ack's code in Stream mode; None if the callback was not answered in time or
            could not be delivered at all.
        text: the response body, or the ack's ``data`` string.
        sent: the robot message, card-click payload or event that was sent (decrypted); None if nothing was sent.
        ack: the bot's whole ack frame in Stream mode.
        reply: the decrypted reply to an event push, after its signature was verified (C.6).
    """

    status: int | None
    text: str = ""
    sent: dict | None = None
    ack: dict | None = None
    reply: str | None = None


class InvalidReply(AssertionError):
    """The bot answered something DingTalk would reject.

    For example: an event reply that does not verify, a ping ack that does not echo, or a card update that breaks the
    card's rules.
    """


class FakeDingTalk:
    """DingTalk's servers for one corp with one enterprise-internal app and its robot.

    Start ``app()`` on an ephemeral port, then set ``base_url`` (this fake) and ``bot_url`` (the bot under test).

    Args:
        app_key, app_secret: the app's credentials (clientId/clientSecret for Stream), checked by accessToken and the
            gateway; the secret also signs robot callbacks (C.1).
        robot_code: the robot's code (default: ``app_key``, as for enterprise-internal apps).
        corp_id: the organisation, as chatbotCorpId, senderCorpId and a card click's corpId.
        users: the staff ids that exist.
        conversations: the group openConversationIds the robot is in, with their titles.
        card_template_id: the only card template that exists.
        clock: seconds since the epoch, for every TTL, window and timestamp (e.g. a ``FakeClock``).
        session: the client session for callbacks; by default the fake opens one and ``close()`` closes it.
        callback_timeout: how long an HTTP callback waits for the bot (DingTalk: about 1.5 s).
        flow_limit_per_minute: private messages and card deliveries per user in any 60 s; the excess is
            flow-controlled.
    """

    def __init__(
        self, *, app_key: str = "dingfakeappkey", app_secret: str = "fake-app-secret", robot_code: str | None = None,
        corp_id: str = "dingfakecorp", users: Iterable[str] = ("zhangsan", "lisi", "wangwu", "zhaoliu"),
        conversations: dict[str, str] | None = None, card_template_id: str = "shuangsui_task.schema",
        clock: Callable[[], float] = time.time, session: aiohttp.ClientSession | None = None,
        callback_timeout: float = 1.5, flow_limit_per_minute: int = 20,
    ) -> None:
        self.app_key, self.app_secret = app_key, app_secret
        self.robot_code = robot_code or app_key
        self.corp_id = corp_id
        self.users = set(users)  # staff ids are case-sensitive
        self.conversations = dict({"cidGROUP1==": "抽查工作群"} if conversations is None else conversations)
        self.card_template_id = card_template_id
        self.clock = clock
        self.callback_timeout, self.flow_limit_per_minute = callback_timeout, flow_limit_per_minute
        self.base_url = ""  # this fake, e.g. "http://127.0.0.1:41234"; set by the test
        self.bot_url = ""  # the bot under test; set by the test
        self.robot_path = "/dingtalk/callback"
        self.mode = "http"  # how robot messages reach the bot: "http" or "stream"
        self._session, self._owns_session = session, session is None

        self.calls: list[dict] = []  # every API call: method, path, query, body, at
        self.delivered: list[dict] = []  # 1:1 messages and cards, one record per user
        self.group_messages: list[dict] = []  # group messages and cards
        self.updates: list[dict] = []  # card updates, by PUT or by a card-callback response
        self.session_replies: list[dict] = []  # messages sent through a sessionWebhook
        self.callbacks: list[dict] = []  # every delivery attempt: kind, mode, path, params, headers, body, at
        self.cards: dict[str, dict] = {}  # outTrackId -> the card as it now is
        self.routes: dict[str, dict] = {}  # callbackRouteKey -> url, api_secret
        self.media: dict[str, dict] = {}  # media_id -> content, file_name, content_type, type, at
        self.files: dict[str, dict] = {}  # downloadCode -> content, file_name, content_type
        self.stream_clients: list[dict] = []  # open Stream connections: id, subscriptions, ua, local_ip, opened_at, ws
        self.stream_connections = 0  # Stream connections ever opened
        self.stream_frames: list[dict] = []  # every frame sent on a Stream connection: connection, frame, at
        self.stream_acks: list[dict] = []  # every frame the Stream clients sent back

        self._tokens: dict[str, dict] = {}  # token -> issued_at, state (ok | expired)
        self._current_token: str | None = None
        self._tickets: dict[str, dict] = {}  # Stream ticket -> issued_at, subscriptions, ua, local_ip
        self._sessions: dict[str, dict] = {}  # sessionWebhook session -> conversation, type, user, expires_at (ms)
        self._file_urls: dict[str, str] = {}  # /files/<id> -> downloadCode
        self._sent_to: dict[str, deque] = defaultdict(deque)  # user -> delivery times within the last minute
        self._group_sent: dict[str, deque] = defaultdict(deque)  # conversation -> send times within the last minute
        self._acks: dict[str, tuple[asyncio.Future, int]] = {}  # messageId -> the ack awaited, connection id
        self._stream_changed = asyncio.Event()
        self._faults: list[dict] = []
        self._slow_calls: set[asyncio.Task] = set()  # strong references to shielded fault tasks

    # ----- assertions and control -------------------------------------------------------------------------------

    @property
    def token_calls(self) -> int:
        """How many times oauth2/accessToken was called."""
        return sum(1 for call in self.calls if call["path"] == "/v1.0/oauth2/accessToken")

    def delivered_to(self, user: str) -> list[dict]:
        """Every 1:1 message and card delivered to ``user``, in order."""
        return [record for record in self.delivered if record["user"] == user]

    def card_view(self, out_track_id: str, user: str | None = None) -> dict:
        """The card as ``user`` sees it now (public data, with that user's private data on top), parsed by the
        template's variables (module docstring).

        Raises:
            KeyError: no such card.
            ValueError: a variable breaks the template's contract.
        """
        card = self.cards[out_track_id]
        return _template_view({**card["param_map"], **card["private"].get(user, {})})

    def expire_sessions(self) -> None:
        """Make every sessionWebhook given so far answer as expired (DingTalk may end them early)."""
        for session in self._sessions.values():
            session["expires_at"] = 0

    def expire_tokens(self) -> None:
        """Make every token issued so far answer 401 (or 40014 on oapi)."""
        for issued in self._tokens.values():
            issued["state"] = "expired"

    def fail_next(
        self, path_suffix: str, *, times: int = 1, status: int | None = None, code: str | None = None,
        errcode: int | None = None, delay: float | None = None,
    ) -> None:
        """Make the next ``times`` calls to an API fail; a failed call delivers nothing.

        Args:
            path_suffix: the end of the API path, e.g. ``"oToMessages/batchSend"``.
            times: how many calls fail.
            status: the HTTP status. Alone, the answer is an HTML error page (e.g. 502); with ``code``, a JSON error.
            code: answer a new-API JSON error with this code (status 400 unless ``status`` is given).
            errcode: answer an oapi errcode (HTTP 200), e.g. 40014.
            delay: sleep this long first. Alone, the call is then served normally (a slow server: a client that
                gave up may still see it delivered).
        """
        self._faults.append({"suffix": path_suffix, "times": times, "status": status, "code": code,
                             "errcode": errcode, "delay": delay})

    async def close(self) -> None:
        """Close the Stream connections and the client session if this fake opened it, and stop calls still sleeping
        in a fault."""
        for task in list(self._slow_calls):
            task.cancel()
        await self._close_streams()
        if self._owns_session and self._session is not None:
            await self._session.close()

    # ----- the server: tokens and robot messages -----------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp app serving DingTalk's APIs: api.dingtalk.com's and oapi.dingtalk.com's paths alike."""
        app = web.Application(middlewares=[self._record_and_inject])
        app.router.add_post("/v1.0/oauth2/accessToken", self._access_token)
        app.router.add_post("/v1.0/robot/oToMessages/batchSend", self._batch_send)
        app.router.add_post("/v1.0/robot/groupMessages/send", self._group_send)
        app.router.add_post("/v1.0/robot/messageFiles/download", self._file_download)
        app.router.add_post("/v1.0/card/instances", self._card_create)
        app.router.add_put("/v1.0/card/instances", self._card_update)
        app.router.add_post("/v1.0/card/instances/deliver", self._card_deliver)
        app.router.add_post("/v1.0/card/instances/createAndDeliver", self._card_create_and_deliver)
        app.router.add_post("/v1.0/card/callbacks/register", self._callback_register)
        app.router.add_post("/v1.0/gateway/connections/open", self._gateway_open)
        app.router.add_get("/connect", self._gateway_connect)
        app.router.add_get("/files/{file_id}", self._file_get)
        app.router.add_post("/media/upload", self._media_upload)
        app.router.add_post("/robot/sendBySession", self._send_by_session)
        app.on_shutdown.append(lambda _: self._close_streams())
        return app

    @web.middleware
    async def _record_and_inject(self, request: web.Request, handler) -> web.StreamResponse:
        # A multipart upload is parsed by its handler from the stream; its bytes are not logged.
        raw = b"" if request.path == "/media/upload" else await request.read()
        body = _json(raw)
        self.calls.append({"method": request.method, "path": request.path, "query": dict(request.query),
                           "body": raw.decode(errors="replace") if body is None and raw else body, "at": self.clock()})
        fault = next((f for f in self._faults if f["times"] > 0 and request.path.endswith(f["suffix"])), None)
        if fault is None:
            return await handler(request)
        fault["times"] -= 1

        async def faulty() -> web.StreamResponse:
            if fault["delay"]:
                await asyncio.sleep(fault["delay"])
            if fault["code"] is not None:
                return _error(fault["status"] or 400, fault["code"], "injected fault")
            if fault["errcode"] is not None:
                return _oapi(fault["errcode"], "injected fault")
            if fault["status"]:
                return web.Response(status=fault["status"], text=f"<html><body>{fault['status']}</body></html>",
                                    content_type="text/html")
            return await handler(request)

        # Shielded: a test server cancels the handler when the client hangs up, but DingTalk goes on and delivers.
        task = asyncio.ensure_future(faulty())
        self._slow_calls.add(task)
        task.add_done_callback(self._slow_calls.discard)
        return await asyncio.shield(task)

    async def _access_token(self, request: web.Request) -> web.Response:
        body = _json(await request.read())
        if not isinstance(body, dict):  # a form-encoded body gets a 400 too (C.3)
            return _error(400, INVALID_PARAMETER, "the body must be JSON")
        if body.get("appKey") != self.app_key or body.get("appSecret") != self.app_secret:
            return _error(400, INVALID_CLIENT, "无效的clientId或clientSecret")
        now = self.clock()
        current = self._tokens.get(self._current_token or "")
        if current is not None and self._token_valid(current, now):
            current["issued_at"] = now  # the same token again, valid 2 h from now (C.3)
        else:
            self._current_token = secrets.token_hex(16)
            self._tokens[self._current_token] = {"issued_at": now, "state": "ok"}
        return web.json_response({"accessToken": self._current_token, "expireIn": TOKEN_TTL})

    def _token_valid(self, issued: dict | None, now: float) -> bool:
        return issued is not None and issued["state"] == "ok" and now - issued["issued_at"] < TOKEN_TTL

    async def _api_body(self, request: web.Request) -> dict | web.Response:
        """The JSON body of a new-API call, or DingTalk's refusal of its token or body."""
        if not self._token_valid(self._tokens.get(request.headers.get("x-acs-dingtalk-access-token", "")),
                                 self.clock()):
            return _error(401, INVALID_AUTH, "不合法的access_token")
        body = _json(await request.read())
        if not isinstance(body, dict):
            return _error(400, INVALID_PARAMETER, "the body must be a JSON object")
        return body

    async def _batch_send(self, request: web.Request) -> web.Response:
        body = await self._api_body(request)
        if isinstance(body, web.Response):
            return body
        if body.get("robotCode") != self.robot_code:
            return _error(400, INVALID_PARAMETER, "robotCode 不存在")
        user_ids = body.get("userIds")
        if not isinstance(user_ids, list) or not user_ids or not all(isinstance(u, str) for u in user_ids):
            return _error(400, INVALID_PARAMETER, "userIds must be a list of staff ids")
        if len(user_ids) > BATCH_USERS:
            return _error(400, INVALID_PARAMETER, f"userIds: at most {BATCH_USERS}")
        message = self._sample_message(body)
        if isinstance(message, web.Response):
            return message
        msg_key, param, content = message
        now, invalid, flow_controlled = self.clock(), [], []
        for user in dict.fromkeys(user_ids):
            if user not in self.users:
                invalid.append(user)
            elif self._flow_controlled(user, now):
                flow_controlled.append(user)
            else:
                self._sent_to[user].append(now)
                self.delivered.append({"api": "batchSend", "user": user, "msgKey": msg_key, "param": param,
                                       "content": content, "card": None, "out_track_id": None, "at": now})
        return web.json_response({"processQueryKey": _random_key(), "invalidStaffIdList": invalid,
                                  "flowControlledStaffIdList": flow_controlled, "filteredStaffIdList": []})

    async def _group_send(self, request: web.Request) -> web.Response:
        body = await self._api_body(request)
        if isinstance(body, web.Response):
            return body
        if body.get("robotCode") != self.robot_code:
            return _error(400, INVALID_PARAMETER, "robotCode 不存在")
        conversation = _text(body, "openConversationId")
        if conversation not in self.conversations:
            return _error(400, INVALID_PARAMETER, "openConversationId: the robot is not in this group")
        message = self._sample_message(body)
        if isinstance(message, web.Response):
            return message
        msg_key, param, content = message
        now = self.clock()
        if self._group_throttled(conversation, now):
            return _error(403, THROTTLED, f"at most {GROUP_LIMIT_PER_MINUTE} messages a minute to one group")
        self._group_sent[conversation].append(now)
        self.group_messages.append({"api": "groupMessages/send", "conversation": conversation, "msgKey": msg_key,
                                    "param": param, "content": content, "card": None, "out_track_id": None,
                                    "at": now})
        return web.json_response({"processQueryKey": _random_key()})

    def _sample_message(self, body: dict) -> tuple[str, dict, str | None] | web.Response:
        """A msgKey and its msgParam (a JSON string) as (msgKey, decoded param, text), or DingTalk's refusal (C.4)."""
        msg_key, raw = _text(body, "msgKey"), body.get("msgParam")
        if msg_key not in SAMPLE_MESSAGES:
            return _error(400, INVALID_PARAMETER, f"msgKey {msg_key!r} is not supported")
        if not isinstance(raw, str):
            return _error(400, INVALID_PARAMETER, "msgParam must be a JSON string")
        param = _json(raw.encode())
        required, text_field = SAMPLE_MESSAGES[msg_key]
        if not isinstance(param, dict) or not all(isinstance(param.get(f), str) and param[f] for f in required):
            return _error(400, INVALID_PARAMETER, f"msgParam of {msg_key} needs {', '.join(required)}")
        photo = param.get("photoURL", "")
        if msg_key == "sampleImageMsg" and not (photo in self.media or photo.startswith(("http://", "https://"))):
            return _error(400, INVALID_PARAMETER, "photoURL is neither a media_id nor a URL")
        return msg_key, param, param[text_field] if text_field else None

    def _flow_controlled(self, user: str, now: float) -> bool:
        return _count_within_minute(self._sent_to[user], now) >= self.flow_limit_per_minute

    def _group_throttled(self, conversation: str, now: float) -> bool:
        return _count_within_minute(self._group_sent[conversation], now) >= GROUP_LIMIT_PER_MINUTE

    # ----- the server: files, media and session webhooks ---------------------------------------------------------

    async def _file_download(self, request: web.Request) -> web.Response:
        body = await self._api_body(request)
        if isinstance(body, web.Response):
            return body
        if body.get("robotCode") != self.robot_code:
            return _error(400, INVALID_PARAMETER, "robotCode 不存在")
        code = _text(body, "downloadCode")
        if code not in self.files:
            return _error(400, INVALID_PARAMETER, "downloadCode is invalid")
        file_id = secrets.token_urlsafe(24)
        self._file_urls[file_id] = code
        return web.json_response({"downloadUrl": f"{self.base_url}/files/{file_id}"})

    async def _file_get(self, request: web.Request) -> web.Response:
        """The bytes behind a downloadUrl: no token, the URL is the capability."""
        code = self._file_urls.get(request.match_info["file_id"])
        if code is None:
            return web.Response(status=404, text="NoSuchKey")
        found = self.files[code]
        return web.Response(body=found["content"], content_type=found["content_type"])

    async def _media_upload(self, request: web.Request) -> web.Response:
        """oapi media/upload (multipart field ``media``), with the token as the ``access_token`` query parameter."""
        if not self._token_valid(self._tokens.get(request.query.get("access_token", "")), self.clock()):
            return _oapi(OAPI_INVALID_TOKEN, "不合法的access_token")
        try:
            upload = (await request.post()).get("media")
        except ValueError:  # not multipart after all
            upload = None
        if not hasattr(upload, "file"):
            return _oapi(OAPI_BAD_BODY, "缺少参数 media")
        kind = request.query.get("type", "image")
        media_id = "@lA" + secrets.token_urlsafe(18).replace("-", "A").replace("_", "B")
        self.media[media_id] = {"content": upload.file.read(), "file_name": upload.filename or "",
                                "content_type": upload.content_type, "type": kind, "at": self.clock()}
        return _oapi(OK, media_id=media_id, type=kind, created_at=int(self.clock() * 1000))

    async def _send_by_session(self, request: web.Request) -> web.Response:
        """A reply through the sessionWebhook of a received message: no token, good until it expires (C.1)."""
        session = self._sessions.get(request.query.get("session", ""))
        if session is None or self.clock() * 1000 >= session["expires_at"]:
            return _oapi(SESSION_EXPIRED, "session expired")
        body = _json(await request.read())
        msgtype = body.get("msgtype") if isinstance(body, dict) else None
        payload = body.get(msgtype) if msgtype in ("text", "markdown") else None
        fields = ("content",) if msgtype == "text" else ("title", "text")
        if not isinstance(payload, dict) or not all(isinstance(payload.get(f), str) and payload[f] for f in fields):
            return _oapi(OAPI_BAD_BODY, "缺少参数 json")
        self.session_replies.append({
            "session": request.query["session"], "conversation": session["conversation"],
            "conversation_type": session["conversation_type"], "user": session["user"], "msgtype": msgtype,
            "content": payload[fields[-1]], "mentions": body.get("at"), "at": self.clock()})
        return _oapi(OK)

    # ----- the server: interactive cards --------------------------------------------------------------------------

    async def _card_create(self, request: web.Request) -> web.Response:
        body = await self._api_body(request)
        if isinstance(body, web.Response):
            return body
        card = self._new_card(body)
        if isinstance(card, web.Response):
            return card
        self.cards[body["outTrackId"]] = card
        return web.json_response({"success": True, "result": body["outTrackId"]})

    async def _card_deliver(self, request: web.Request) -> web.Response:
        body = await self._api_body(request)
        if isinstance(body, web.Response):
            return body
        if _text(body, "outTrackId") not in self.cards:
            return _error(400, UNKNOWN_OUT_TRACK_ID, "the card does not exist")
        spaces = self._spaces(body)
        if isinstance(spaces, web.Response):
            return spaces
        return web.json_response({"success": True, "result": self._deliver_card(body["outTrackId"], spaces)})

    async def _card_create_and_deliver(self, request: web.Request) -> web.Response:
        body = await self._api_body(request)
        if isinstance(body, web.Response):
            return body
        card = self._new_card(body)
        if isinstance(card, web.Response):
            return card
        spaces = self._spaces(body)
        if isinstance(spaces, web.Response):
            return spaces
        self.cards[body["outTrackId"]] = card
        results = self._deliver_card(body["outTrackId"], spaces)
        return web.json_response({"success": True,
                                  "result": {"outTrackId": body["outTrackId"], "deliverResults": results}})

    async def _card_update(self, request: web.Request) -> web.Response:
        body = await self._api_body(request)
        if isinstance(body, web.Response):
            return body
        out_track_id = _text(body, "outTrackId")
        if out_track_id not in self.cards:
            return _error(400, UNKNOWN_OUT_TRACK_ID, "the card does not exist")
        card_by_key, private_by_key = _by_key(body)
        problem = self._apply_update(out_track_id, body.get("cardData"), body.get("privateData"), "PUT",
                                     card_by_key, private_by_key)
        if problem:
            return _error(400, INVALID_PARAMETER, problem)
        return web.json_response({"success": True, "result": True})

    async def _callback_register(self, request: web.Request) -> web.Response:
        body = await self._api_body(request)
        if isinstance(body, web.Response):
            return body
        key, url = body.get("callbackRouteKey"), body.get("callbackUrl")
        if not (isinstance(key, str) and key and isinstance(url, str) and url.startswith(("http://", "https://"))):
            return _error(400, INVALID_PARAMETER, "callbackRouteKey and callbackUrl are required")
        if key in self.routes and not body.get("forceUpdate"):
            return _error(400, ROUTE_KEY_EXISTS, f"callbackRouteKey {key} already exists")
        api_secret = body.get("apiSecret") or secrets.token_hex(16)  # a guess: DingTalk issues one when none is given
        self.routes[key] = {"url": url, "api_secret": api_secret}
        return web.json_response({"success": True, "result": {"callbackUrl": url, "apiSecret": api_secret}})

    def _new_card(self, body: dict) -> dict | web.Response:
        """The card a create call describes, or DingTalk's refusal (C.5)."""
        if body.get("cardTemplateId") != self.card_template_id:
            return _error(400, INVALID_PARAMETER, "cardTemplateId does not exist")
        out_track_id = _text(body, "outTrackId")
        if not out_track_id:
            return _error(400, INVALID_PARAMETER, "outTrackId is required")
        if out_track_id in self.cards:
            return _error(400, DUPLICATE_OUT_TRACK_ID, f"outTrackId {out_track_id} already exists")
        card_data = body.get("cardData")
        param_map = card_data.get("cardParamMap") if isinstance(card_data, dict) else None
        if not _string_map(param_map):
            return _error(400, INVALID_PARAMETER, "cardData.cardParamMap: every value must be a string")
        private = _private_maps(body.get("privateData"))
        if private is None:
            return _error(400, INVALID_PARAMETER, "privateData: every cardParamMap value must be a string")
        callback_type, route_key = body.get("callbackType"), body.get("callbackRouteKey")
        if callback_type not in (None, "STREAM", "HTTP"):
            return _error(400, INVALID_PARAMETER, "callbackType is STREAM or HTTP")
        if callback_type == "HTTP" and not (isinstance(route_key, str) and route_key):
            return _error(400, INVALID_PARAMETER, "callbackRouteKey is required for HTTP callbacks")
        if body.get("userIdType", 1) != 1:
            return _error(400, INVALID_PARAMETER, "this fake knows userIds only (userIdType 1)")
        return {"template": body["cardTemplateId"], "param_map": dict(param_map), "private": private,
                "callback_type": callback_type, "route_key": route_key, "spaces": []}

    def _spaces(self, body: dict) -> list[tuple[str, str]] | web.Response:
        """The (spaceType, spaceId) pairs of a deliver call's openSpaceId, or DingTalk's refusal (C.5)."""
        open_space_id = body.get("openSpaceId")
        if not isinstance(open_space_id, str) or not open_space_id.startswith(SPACE_PREFIX):
            return _error(400, INVALID_PARAMETER, f"openSpaceId must start with {SPACE_PREFIX}")
        spaces = []
        for part in open_space_id.removeprefix(SPACE_PREFIX).split(";"):
            space_type, _, space_id = part.partition(".")
            if space_type.upper() not in SPACE_TYPES or not space_id:
                return _error(400, INVALID_PARAMETER, f"openSpaceId: unsupported space {part!r}")
            spaces.append((space_type.upper(), space_id))
        robot_model, group_model = body.get("imRobotOpenDeliverModel"), body.get("imGroupOpenDeliverModel")
        if any(t == "IM_ROBOT" for t, _ in spaces) and (
                not isinstance(robot_model, dict) or robot_model.get("spaceType") != "IM_ROBOT"):
            return _error(400, INVALID_PARAMETER, "imRobotOpenDeliverModel.spaceType must be IM_ROBOT")
        if any(t == "IM_GROUP" for t, _ in spaces) and (
                not isinstance(group_model, dict) or group_model.get("robotCode") != self.robot_code):
            return _error(400, INVALID_PARAMETER, "imGroupOpenDeliverModel.robotCode is required")
        return spaces

    def _deliver_card(self, out_track_id: str, spaces: list[tuple[str, str]]) -> list[dict]:
        """Deliver a card to each space; a space it cannot reach fails inside the 200 answer (C.5)."""
        card, now, results = self.cards[out_track_id], self.clock(), []
        for space_type, space_id in spaces:
            if space_type == "IM_ROBOT":
                error = ("user not found" if space_id not in self.users
                         else "flow controlled" if self._flow_controlled(space_id, now) else "")
            else:
                error = ("robot is not in the conversation" if space_id not in self.conversations
                         else "flow controlled" if self._group_throttled(space_id, now) else "")
            if not error:
                record = {"api": "card", "msgKey": None, "param": None, "content": None,
                          "out_track_id": out_track_id, "at": now}
                if space_type == "IM_ROBOT":
                    self._sent_to[space_id].append(now)
                    self.delivered.append({**record, "user": space_id,
                                           "card": {**card["param_map"], **card["private"].get(space_id, {})}})
                else:
                    self._group_sent[space_id].append(now)
                    self.group_messages.append({**record, "conversation": space_id, "card": dict(card["param_map"])})
                if (space_type, space_id) not in card["spaces"]:
                    card["spaces"].append((space_type, space_id))
            results.append({"spaceType": space_type, "spaceId": space_id, "success": not error, "errorMsg": error,
                            "carrierId": "" if error else _random_key()})
        return results

    def _apply_update(self, out_track_id: str, card_data: object, private_data: object, via: str,
                      card_by_key: bool, private_by_key: bool, user: str | None = None) -> str | None:
        """Update a card's public and private data (PUT, or a card-callback response); the problem, or None."""
        card_map = card_data.get("cardParamMap") if isinstance(card_data, dict) else None
        if card_data is not None and not _string_map(card_map):
            return "cardData.cardParamMap: every value must be a string"
        private = _private_maps(private_data)
        if private is None:
            return "privateData: every cardParamMap value must be a string"
        card = self.cards[out_track_id]
        if card_map is not None:
            card["param_map"] = {**card["param_map"], **card_map} if card_by_key else dict(card_map)
        for staff_id, values in private.items():
            mine = card["private"].get(staff_id, {})
            card["private"][staff_id] = {**mine, **values} if private_by_key else values
        self.updates.append({"api": via, "out_track_id": out_track_id, "user": user, "card_data": card_map,
                             "private_data": private, "by_key": (card_by_key, private_by_key), "at": self.clock()})
        return None

    # ----- the server: the Stream gateway --------------------------------------------------------------------------

    async def _gateway_open(self, request: web.Request) -> web.Response:
        body = _json(await request.read())
        if not isinstance(body, dict):
            return _error(400, INVALID_PARAMETER, "the body must be JSON")
        if body.get("clientId") != self.app_key or body.get("clientSecret") != self.app_secret:
            return _error(400, INVALID_CLIENT, "无效的clientId或clientSecret")
        subscriptions = body.get("subscriptions")
        if not isinstance(subscriptions, list) or not all(
                isinstance(s, dict) and s.get("type") in ("EVENT", "CALLBACK") and isinstance(s.get("topic"), str)
                for s in subscriptions):
            return _error(400, INVALID_PARAMETER, "subscriptions: a list of {type: EVENT | CALLBACK, topic}")
        ticket = str(uuid.uuid4())
        self._tickets[ticket] = {"issued_at": self.clock(), "subscriptions": subscriptions, "ua": body.get("ua"),
                                 "local_ip": body.get("localIp")}
        scheme = "wss" if request.secure else "ws"
        return web.json_response({"endpoint": f"{scheme}://{request.host}/connect", "ticket": ticket})

    async def _gateway_connect(self, request: web.Request) -> web.StreamResponse:
        ticket = self._tickets.pop(request.query.get("ticket", ""), None)  # good for one connection only
        if ticket is None or self.clock() - ticket["issued_at"] >= TICKET_TTL:
            return _error(401, INVALID_AUTH, "invalid ticket")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.stream_connections += 1
        connection = {"id": self.stream_connections, "subscriptions": ticket["subscriptions"], "ua": ticket["ua"],
                      "local_ip": ticket["local_ip"], "opened_at": self.clock(), "ws": ws}
        self.stream_clients.append(connection)
        self._stream_changed.set()
        try:
            async for message in ws:
                frame = _json(message.data.encode()) if message.type == aiohttp.WSMsgType.TEXT else None
                if not isinstance(frame, dict):
                    continue
                self.stream_acks.append(frame)
                waiting = self._acks.get(str((frame.get("headers") or {}).get("messageId")))
                if waiting is not None and not waiting[0].done():
                    waiting[0].set_result(frame)
        finally:
            self.stream_clients.remove(connection)
            self._stream_changed.set()
            for future, connection_id in list(self._acks.values()):
                if connection_id == connection["id"] and not future.done():
                    future.set_exception(ConnectionResetError("the Stream client went away before acking"))
        return ws

    async def _close_streams(self) -> None:
        for connection in list(self.stream_clients):
            await connection["ws"].close(code=aiohttp.WSCloseCode.GOING_AWAY)

    async def _send_frame(self, connection: dict, frame_type: str, topic: str, data: dict, *,
                          timeout: float | None = None) -> dict | None:
        """Send one frame on a Stream connection (C.7); with a ``timeout``, wait for its ack and return it."""
        now = self.clock()
        message_id = f"{secrets.token_hex(4)}_{connection['id']}_{int(now * 1000):x}_{secrets.token_hex(2)}"
        frame = {"specVersion": "1.0", "type": frame_type,
                 "headers": {"topic": topic, "messageId": message_id, "contentType": "application/json",
                             "time": str(int(now * 1000))},
                 "data": json.dumps(data, ensure_ascii=False)}
        self.stream_frames.append({"connection": connection["id"], "frame": frame, "at": now})
        if timeout is None:
            await connection["ws"].send_str(json.dumps(frame, ensure_ascii=False))
            return None
        future = asyncio.get_running_loop().create_future()
        self._acks[message_id] = (future, connection["id"])
        try:
            await connection["ws"].send_str(json.dumps(frame, ensure_ascii=False))
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._acks.pop(message_id, None)

    # ----- DingTalk's side: the Stream connections -----------------------------------------------------------------

    async def wait_for_stream(self, n: int = 1, timeout: float = 10) -> None:
        """Wait until at least ``n`` Stream clients are connected.

        Raises:
            TimeoutError: fewer than ``n`` after ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while len(self.stream_clients) < n:
                self._stream_changed.clear()
                await self._stream_changed.wait()

    async def stream_push(self, topic: str, data: dict, *, timeout: float = 5) -> dict:
        """Push ``data`` as a CALLBACK frame to one client subscribed to ``topic``; return the client's ack (C.7).

        Like DingTalk, it picks one of the subscribed connections at random.

        Raises:
            LookupError: no connected client subscribed to ``topic``.
            TimeoutError: no ack within ``timeout`` seconds.
            ConnectionResetError: the client went away before acking.
        """
        candidates = [connection for connection in self.stream_clients
                      if any(s["type"] == "CALLBACK" and s["topic"] == topic for s in connection["subscriptions"])]
        if not candidates:
            raise LookupError(f"no Stream client subscribed to {topic}")
        return await self._send_frame(random.choice(candidates), "CALLBACK", topic, data, timeout=timeout)

    async def stream_ping(self, *, timeout: float = 5) -> list[dict]:
        """Ping every connected client (SYSTEM topic "ping"); return their acks, each echoing its ``opaque``.

        Raises:
            InvalidReply: an ack does not echo the ping's opaque.
            TimeoutError: a client did not ack within ``timeout`` seconds.
        """
        acks = []
        for connection in list(self.stream_clients):
            opaque = str(uuid.uuid4())
            ack = await self._send_frame(connection, "SYSTEM", "ping", {"opaque": opaque}, timeout=timeout)
            if _ack_data(ack) != {"opaque": opaque}:
                raise InvalidReply(f"the ping ack does not echo opaque {opaque}: {ack}")
            acks.append(ack)
        return acks

    async def stream_disconnect(self, grace: float = 0.3) -> None:
        """Tell every connected client it will be disconnected (SYSTEM topic "disconnect"), then close the
        connections after ``grace`` seconds (DingTalk: about 10 s). Clients are expected to reconnect.

        It returns once the closed connections are gone from ``stream_clients``, so a following
        ``wait_for_stream`` waits for new ones.
        """
        connections = list(self.stream_clients)
        for connection in connections:
            try:
                await self._send_frame(connection, "SYSTEM", "disconnect", {"reason": "connection is expired"})
            except ConnectionResetError:
                continue  # already going
        await asyncio.sleep(grace)
        for connection in connections:
            await connection["ws"].close()
        closed = {connection["id"] for connection in connections}
        async with asyncio.timeout(10):
            while any(connection["id"] in closed for connection in self.stream_clients):
                self._stream_changed.clear()
                await self._stream_changed.wait()

    # ----- DingTalk's side: robot messages -----------------------------------------------------------------------

    def sign(self, timestamp_ms: int) -> str:
        """The ``sign`` header of a robot callback sent at ``timestamp_ms`` (C.1).

        It is Base64(HMAC-SHA256(key = appSecret, message = timestamp + "\\n" + appSecret)).
        """
        message = f"{timestamp_ms}\n{self.app_secret}".encode()
        return base64.b64encode(hmac.new(self.app_secret.encode(), message, hashlib.sha256).digest()).decode()

    def build_robot_message(
        self, user: str, text: str, *, conversation: str | None = None, msg_id: str | None = None,
        timestamp: int | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """The headers and the JSON body with which DingTalk POSTs ``user``'s text message to the bot (C.1).

        Its sessionWebhook is live. ``timestamp`` (ms) sets the signed header; by default it is the clock's time.
        """
        body = self._text_message(user, text, conversation, msg_id)
        return self._robot_headers(timestamp), json.dumps(body, ensure_ascii=False).encode()

    async def send_text(
        self, user: str, text: str, *, conversation: str | None = None, msg_id: str | None = None,
        at_bot: bool = True,
    ) -> CallbackResult:
        """``user`` writes ``text`` to the robot 1:1, or @-mentions it in the group ``conversation`` (C.1).

        It goes by ``mode``: POSTed to ``bot_url + robot_path`` with signed headers, or pushed to a Stream client.
        DingTalk delivers it once, with no retry. In a group only an @-mention reaches the robot: without ``at_bot``
        nothing is sent.

        Raises:
            LookupError: the robot is not in ``conversation``.
        """
        if conversation is not None and conversation not in self.conversations:
            raise LookupError(f"the robot is not in conversation {conversation!r}")
        if conversation is not None and not at_bot:
            return CallbackResult(None)
        return await self._deliver_robot(self._text_message(user, text, conversation, msg_id))

    async def send_media(
        self, user: str, kind: str, content: bytes, *, file_name: str = "photo.jpg",
        content_type: str = "image/jpeg", msg_id: str | None = None,
    ) -> CallbackResult:
        """``user`` sends a "picture", "video" or "file" to the robot 1:1 (C.1).

        The message carries a downloadCode for messageFiles/download. Media in a group cannot @-mention the robot,
        so they never reach it.
        """
        if kind not in MEDIA_KINDS:
            raise ValueError(f"kind must be one of {MEDIA_KINDS}")
        code = secrets.token_urlsafe(24)
        self.files[code] = {"content": content, "file_name": file_name, "content_type": content_type}
        payload = {
            "picture": {"downloadCode": code, "pictureDownloadCode": secrets.token_urlsafe(16)},
            "video": {"downloadCode": code, "duration": "5", "videoType": "mp4"},
            "file": {"downloadCode": code, "fileName": file_name, "fileId": str(secrets.randbelow(10**11)),
                     "spaceId": str(secrets.randbelow(10**10))},
        }[kind]
        return await self._deliver_robot(self._robot_body(user, None, msg_id, kind, {"content": payload}))

    def _text_message(self, user: str, text: str, conversation: str | None, msg_id: str | None) -> dict:
        # In a group the stripped @-mention leaves a leading space (C.1).
        content = text if conversation is None else f" {text}"
        return self._robot_body(user, conversation, msg_id, "text", {"text": {"content": content}})

    def _robot_body(self, user: str, conversation: str | None, msg_id: str | None, msgtype: str,
                    payload: dict) -> dict:
        """A robot message's body (C.1), with a new sessionWebhook good for 90 minutes."""
        created = int(self.clock() * 1000)
        group = conversation is not None
        conversation_id = conversation if group else "cid" + _digest(f"{self.robot_code}:{user}", 16)
        session = secrets.token_hex(16)
        self._sessions[session] = {"conversation": conversation_id, "conversation_type": "2" if group else "1",
                                   "user": user, "expires_at": created + SESSION_TTL_MS}
        robot_id = "$:LWCP_v1:$" + _digest(f"robot:{self.robot_code}", 24)
        body = {"conversationId": conversation_id, "chatbotCorpId": self.corp_id, "chatbotUserId": robot_id,
                "msgId": msg_id or "msg" + base64.b64encode(secrets.token_bytes(18)).decode(),
                "senderNick": user, "isAdmin": False, "senderStaffId": user,
                "sessionWebhookExpiredTime": created + SESSION_TTL_MS, "createAt": created,
                "senderCorpId": self.corp_id, "conversationType": "2" if group else "1",
                "senderId": "$:LWCP_v1:$" + _digest(f"user:{user}", 24),
                "sessionWebhook": f"{self.base_url}/robot/sendBySession?session={session}",
                "robotCode": self.robot_code, "msgtype": msgtype, **payload}
        if group:  # the published 1:1 samples carry none of these
            body |= {"conversationTitle": self.conversations[conversation], "atUsers": [{"dingtalkId": robot_id}],
                     "isInAtList": True}
        return body

    def _robot_headers(self, timestamp: int | None = None) -> dict[str, str]:
        if timestamp is None:  # DingTalk signs each message as it sends it: one millisecond each here
            timestamp = self._last_sign_ms = max(int(self.clock() * 1000), getattr(self, "_last_sign_ms", 0) + 1)
        return {"Content-Type": "application/json", "timestamp": str(timestamp), "sign": self.sign(timestamp)}

    async def _deliver_robot(self, body: dict) -> CallbackResult:
        if self.mode == "stream":
            return await self._push("robot", ROBOT_TOPIC, body)
        return await self._post("robot", self.robot_path, self._robot_headers(),
                                json.dumps(body, ensure_ascii=False).encode(), body)

    # ----- DingTalk's side: card clicks and event pushes ---------------------------------------------------------

    async def click(
        self, user: str, out_track_id: str, button_id: str, *, form: dict[str, str] | None = None,
    ) -> CallbackResult:
        """``user`` clicks button ``button_id`` on card ``out_track_id``; ``form`` holds the choice picked (C.5).

        Like DingTalk, only a user the card reached can click (its IM_ROBOT space, or any member of a group it was
        delivered to). The button must be on the card as that user now sees it, and the card must not be closed. The
        click goes by the card's callbackType: HTTP to the URL registered for its callbackRouteKey (nothing is sent
        if none is), or STREAM to a subscribed client. A card update in the answer (C.5) is applied at once.

        Raises:
            LookupError: the card never reached ``user``.
            ValueError: the card has no such button, it is closed, ``form`` does not fit its choice, or its variables
                break the template's contract.
            InvalidReply: the card update in the answer breaks the card's rules.
        """
        card = self.cards.get(out_track_id)
        space = self._space_of(card, user) if card else None
        if space is None:
            raise LookupError(f"card {out_track_id!r} never reached {user}")
        view = self.card_view(out_track_id, user)
        if view["closed"]:
            raise ValueError(f"card {out_track_id!r} is closed: {view['closed']}")
        button = next((button for button in view["buttons"] if button["id"] == button_id), None)
        if button is None:
            raise ValueError(f"card {out_track_id!r} has no button {button_id!r}")
        choice = view["choice"] or {"key": None, "options": []}
        for key, value in (form or {}).items():
            if key != choice["key"] or value not in {option["id"] for option in choice["options"]}:
                raise ValueError(f"card {out_track_id!r} offers no choice {key}={value!r}")
        params = {**button["params"], **(form or {})}
        payload = {"outTrackId": out_track_id, "corpId": self.corp_id, "userId": user, "userIdType": 1,
                   "type": "actionCallback", "spaceType": space[0], "spaceId": space[1],
                   "content": json.dumps({"cardPrivateData": {"actionIds": [button_id], "params": params}},
                                         ensure_ascii=False),
                   "value": json.dumps(params, ensure_ascii=False), "extension": "{}"}
        route = self.routes.get(card["route_key"]) if card["callback_type"] == "HTTP" else None
        if card["callback_type"] == "STREAM":
            result = await self._push("card", CARD_TOPIC, payload)
            data = _ack_data(result.ack) if result.ack else None  # the SDK wraps the answer as {"response": …}
            response = data.get("response") if isinstance(data, dict) else None
        elif route is not None:
            # How DingTalk signs this request with the route's apiSecret is unconfirmed (PROTOCOLS F): unsigned here.
            result = await self._post("card", route["url"], {"Content-Type": "application/json"},
                                      json.dumps(payload, ensure_ascii=False).encode(), payload)
            response = _json(result.text.encode())
        else:  # no callback configured, or no URL registered for its route key: DingTalk has nowhere to send it
            self.callbacks.append({"kind": "card", "mode": None, "path": None, "params": None, "headers": None,
                                   "body": payload, "at": self.clock()})
            return CallbackResult(None, sent=payload)
        if result.status == 200:
            self._apply_callback_response(out_track_id, user, response)
        return result

    async def push_event(
        self, path: str, event: dict, *, token: str, aes_key: str, owner_key: str | None = None,
        timestamp: int | None = None, nonce: str | None = None,
    ) -> CallbackResult:
        """DingTalk pushes a subscribed ``event`` to the bot's ``path``, encrypted and signed (C.6).

        The receive id is ``owner_key`` (default: the appKey, as for an enterprise-internal app), and the timestamp is
        in milliseconds. The bot must answer a JSON object {"msg_signature", "timeStamp", "nonce", "encrypt"}; its
        decrypted content (it should be "success") goes into ``reply`` after the signature is verified.

        Raises:
            InvalidReply: a 200 answer that is not such an object, or does not verify or decrypt.
        """
        crypto = WeChatCrypto(token, aes_key, owner_key or self.app_key)
        timestamp_text = str(int(self.clock() * 1000) if timestamp is None else timestamp)
        nonce = nonce or secrets.token_hex(4)
        sealed = ElementTree.fromstring(crypto.encrypt_message(json.dumps(event, ensure_ascii=False), nonce,
                                                               timestamp_text))
        params = {"msg_signature": sealed.findtext("MsgSignature"), "timestamp": timestamp_text, "nonce": nonce}
        body = json.dumps({"encrypt": sealed.findtext("Encrypt")}).encode()
        result = await self._post("event", path, {"Content-Type": "application/json"}, body, event, params=params)
        if result.status != 200:
            return result
        answer = _json(result.text.encode())
        try:
            result.reply = crypto.decrypt_message({"Encrypt": answer["encrypt"]}, answer["msg_signature"],
                                                  str(answer["timeStamp"]), answer["nonce"])
        except Exception as error:  # wechatpy raises a mix of its own and low-level errors
            raise InvalidReply(f"the bot's event reply does not verify: {error!r}: {result.text}") from error
        return result

    async def post_raw(
        self, path: str, *, headers: dict[str, str], body: bytes, params: dict[str, str] | None = None,
    ) -> CallbackResult:
        """POST exactly this to the bot: ``path`` is under ``bot_url``, or a whole URL (e.g. a card route's)."""
        return await self._post("raw", path, headers, body, None, params=params)

    def _space_of(self, card: dict, user: str) -> tuple[str, str] | None:
        """The space through which ``user`` sees ``card``: its 1:1 with the robot, or a group it went to."""
        if ("IM_ROBOT", user) in card["spaces"]:
            return "IM_ROBOT", user
        if user in self.users:
            return next((space for space in card["spaces"] if space[0] == "IM_GROUP"), None)
        return None

    def _apply_callback_response(self, out_track_id: str, user: str, response: object) -> None:
        """Apply the card update a card-callback answer may carry (C.5); anything else leaves the card alone."""
        if not isinstance(response, dict) or not {"cardData", "userPrivateData"} & response.keys():
            return
        private = response.get("userPrivateData")
        problem = self._apply_update(out_track_id, response.get("cardData"),
                                     None if private is None else {user: private}, "callback", *_by_key(response),
                                     user=user)
        if problem:
            raise InvalidReply(f"the card-callback answer breaks the card: {problem}: {response}")

    async def _push(self, kind: str, topic: str, body: dict) -> CallbackResult:
        """Push a callback over Stream; no client, no ack in time or a client gone gives status None."""
        self.callbacks.append({"kind": kind, "mode": "stream", "path": topic, "params": None, "headers": None,
                               "body": body, "at": self.clock()})
        try:
            ack = await self.stream_push(topic, body, timeout=self.callback_timeout)
        except (LookupError, TimeoutError, ConnectionError):
            return CallbackResult(None, sent=body)
        data = ack.get("data", "")
        return CallbackResult(ack.get("code"), data if isinstance(data, str) else json.dumps(data), sent=body, ack=ack)

    async def _post(
        self, kind: str, target: str, headers: dict[str, str], body: bytes, sent: dict | None, *,
        params: dict[str, str] | None = None,
    ) -> CallbackResult:
        """POST to the bot once (DingTalk does not retry); no answer within ``callback_timeout`` gives status None."""
        self.callbacks.append({"kind": kind, "mode": "http", "path": target, "params": params,
                               "headers": dict(headers), "body": body, "at": self.clock()})
        url = target if "://" in target else f"{self.bot_url}{target}"
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(self.callback_timeout):
                async with self._session.post(url, data=body, headers=headers, params=params) as response:
                    return CallbackResult(response.status, await response.text(), sent=sent)
        except (TimeoutError, aiohttp.ClientError):
            return CallbackResult(None, sent=sent)


def _error(status: int, code: str, message: str) -> web.Response:
    """A new-API error answer (C.3)."""
    return web.json_response({"code": code, "message": message, "requestid": str(uuid.uuid4()).upper()},
                             status=status)


def _oapi(errcode: int, errmsg: str = "ok", **fields) -> web.Response:
    """An oapi answer: always HTTP 200, with an errcode."""
    return web.json_response({"errcode": errcode, "errmsg": errmsg, **fields})


def _json(raw: bytes) -> object | None:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _text(body: dict, key: str) -> str | None:
    """``body[key]`` if it is a string; None otherwise (JSON can put a list or an object anywhere)."""
    value = body.get(key)
    return value if isinstance(value, str) else None


def _ack_data(ack: dict) -> object | None:
    """An ack frame's ``data``, a JSON string (C.7), decoded."""
    data = ack.get("data")
    return _json(data.encode()) if isinstance(data, str) else data


def _random_key() -> str:
    return base64.b64encode(secrets.token_bytes(24)).decode()


def _digest(text: str, size: int) -> str:
    """A stable opaque id: ``size`` bytes of SHA-256, Base64."""
    return base64.b64encode(hashlib.sha256(text.encode()).digest()[:size]).decode()


def _count_within_minute(times: deque, now: float) -> int:
    while times and now - times[0] >= 60:
        times.popleft()
    return len(times)


def _string_map(value: object) -> bool:
    """Whether ``value`` is a cardParamMap: every key and every value a string (C.5)."""
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _private_maps(value: object) -> dict[str, dict[str, str]] | None:
    """privateData {userId: {cardParamMap}} as {userId: map}; {} for none, None if malformed."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        return None
    maps = {user: (data or {}).get("cardParamMap") if isinstance(data, dict) else None for user, data in value.items()}
    return {user: dict(found) for user, found in maps.items()} if all(map(_string_map, maps.values())) else None


def _by_key(body: dict) -> tuple[bool, bool]:
    """cardUpdateOptions' (updateCardDataByKey, updatePrivateDataByKey): merge the keys given, or replace the map."""
    options = body.get("cardUpdateOptions")
    options = options if isinstance(options, dict) else {}
    return bool(options.get("updateCardDataByKey")), bool(options.get("updatePrivateDataByKey"))


def _is_record(value: object, keys: set[str]) -> bool:
    return isinstance(value, dict) and set(value) == keys and all(isinstance(v, str) for v in value.values())


def _is_button(value: object) -> bool:
    return (isinstance(value, dict) and {"id", "text"} <= set(value) <= {"id", "text", "style", "params"}
            and all(isinstance(value[k], str) and value[k] for k in ("id", "text"))
            and value.get("style", "default") in BUTTON_STYLES and _string_map(value.get("params", {})))


def _template_view(param_map: dict[str, str]) -> dict:
    """The card's variables, parsed by the template's contract (module docstring).

    Raises:
        ValueError: a variable breaks the contract.
    """
    def parsed(name: str, default: object) -> object:
        raw = param_map.get(name, "")
        if not raw:
            return default
        try:
            return json.loads(raw)
        except ValueError:
            raise ValueError(f"card variable {name} is not JSON: {raw!r}") from None

    fields, buttons, choice = parsed("fields", []), parsed("buttons", []), parsed("choice", None)
    if not isinstance(fields, list) or not all(_is_record(field, {"label", "value"}) for field in fields):
        raise ValueError(f"card variable fields is not a list of {{label, value}}: {fields!r}")
    if (not isinstance(buttons, list) or not all(map(_is_button, buttons))
            or len({button["id"] for button in buttons}) != len(buttons)):
        raise ValueError(f"card variable buttons is not a list of {{id, text, style, params}} with unique ids: "
                         f"{buttons!r}")
    if choice is not None:
        options = choice.get("options") if isinstance(choice, dict) else None
        if (not isinstance(options, list) or not options or set(choice) != {"key", "title", "options"}
                or not all(isinstance(choice[k], str) and choice[k] for k in ("key", "title"))
                or not all(_is_record(option, {"id", "text"}) for option in options)
                or len({option["id"] for option in options}) != len(options)):
            raise ValueError(f"card variable choice is not {{key, title, options: [{{id, text}}]}}: {choice!r}")
    return {"title": param_map.get("title", ""), "body": param_map.get("body", ""), "fields": fields,
            "buttons": [{"style": "default", "params": {}, **button} for button in buttons], "choice": choice,
            "closed": param_map.get("closed", ""), "link": param_map.get("link", "")}
