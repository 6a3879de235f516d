"""The console's page and its small JSON API (loopback only, and only with this start's token).

The console acts as anyone, so every request must come from this machine directly (no
reverse proxy: its requests all look local), name this machine in ``Host`` (a DNS
rebinding page names its own host), and carry the token of this start in a
``SameSite=Strict`` cookie (another site's page cannot send it; its ``text/plain``
POSTs are refused too: the API takes ``application/json`` only). The token is printed
with the console's URL at start (``serve``, ``demo``); opening that URL sets the cookie.

``GET /console/`` the page; ``GET /console/api/people`` who one can be;
``GET /console/api/messages?user=&after=`` the group and that user's private chat;
``POST /console/api/send`` a typed message; ``POST /console/api/click`` a card button (with
the page's ``click_id`` for it, the same click posted again is a duplicate, as a platform's
redelivery is: taken once, answered once);
``POST /console/api/upload`` a photo or file for a task (evidence).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import Engine, or_
from sqlmodel import col, select

from bot.chat.events import LOCATION, CardAction, Event, Media
from bot.chat.media import LABEL_CHARS, valid_coordinates
from bot.chat.recipients import entries_on
from bot.chat.router import strip_mentions
from bot.clock import now as clock_now
from bot.console.sender import GROUP_CONVERSATION
from bot.metrics import PROXY_HEADERS
from bot.outbound import GROUP, USER, Destination
from bot.settings import Settings
from bot.texts import page, say
from storage import evidence
from storage.db import reading, transaction
from storage.models import ConsoleMessage, Inspector, Unit

PLATFORM = "console"
MAX_UPLOAD = 20 * 1024 * 1024
COOKIE = "shuangsui_console"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
#: The id a page gives one click (its retries carry the same): the delivery's key with its person.
CLICK_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
#: Uploads shown inline; anything else is a download (an uploaded page or SVG never runs here).
INLINE_IMAGES = ("image/png", "image/jpeg", "image/gif", "image/webp")
#: As the public pages' (bot.public.routes), with the page's own script (by its hash) and API.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
Take = Callable[[Event], Awaitable[bool]]
_R = TypeVar("_R", bound=web.StreamResponse)


def new_token() -> str:
    """The token of one start: whoever holds it may act as anyone at the console."""
    return secrets.token_urlsafe(24)


def url(settings: Settings, token: str) -> str:
    """The console's address with the token, as printed at start."""
    host = settings.server.host if settings.server.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.server.port}/console/?token={quote(token)}"


def exposed(settings: Settings) -> str | None:
    """Why the console may not start: ``[server] host`` is not loopback (it would listen
    beyond this machine); None when it may."""
    if not settings.console.enabled:
        return None
    host = settings.server.host.strip("[]")
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return say("console", "exposed", host=settings.server.host)


def routes(settings: Settings, engine: Engine, take: Take, token: str) -> list[web.RouteDef]:
    console = Console(settings, engine, take, token)
    return [web.get("/console", console.redirect), web.get("/console/", console.page),
            web.get("/console/api/people", console.people), web.get("/console/api/messages", console.messages),
            web.post("/console/api/send", console.send), web.post("/console/api/click", console.click),
            web.post("/console/api/upload", console.upload), web.post("/console/api/location", console.location),
            web.get("/console/api/blob/{sha256}", console.blob)]


def _loopback_only(handler: Callable[[Console, web.Request], Awaitable[_R]]
                   ) -> Callable[[Console, web.Request], Awaitable[_R]]:
    async def guarded(self: Console, request: web.Request) -> _R:
        try:
            self.admit(request)
            response = await handler(self, request)
        except web.HTTPException as exc:
            exc.headers.update({**SECURITY_HEADERS, "Content-Security-Policy": API_POLICY})
            raise
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Security-Policy", API_POLICY)
        return response
    return guarded


class Console:
    def __init__(self, settings: Settings, engine: Engine, take: Take, token: str) -> None:
        self.settings, self.engine, self.take = settings, engine, take
        self.token = token.encode()

    def admit(self, request: web.Request) -> None:
        """This machine, directly, naming itself, with this start's token (the page's
        first request may bring it in the query instead: ``page`` turns it into the
        cookie). Refusals name what to do, never the token."""
        if any(header in request.headers for header in PROXY_HEADERS):  # a proxy's requests all look local
            raise web.HTTPForbidden(text=say("console", "proxied"))
        try:
            local = ipaddress.ip_address((request.remote or "").split("%", 1)[0]).is_loopback
        except ValueError:
            local = False
        if not local:  # the console can act as anyone: never beyond this machine
            raise web.HTTPForbidden(text=say("console", "loopback_only"))
        if not self._our_host(request):  # DNS rebinding: another name for this machine
            raise web.HTTPMisdirectedRequest(text=say("console", "bad_host"))
        opening = request.path in ("/console", "/console/") and self._holds(request.query.get("token", ""))
        if not (opening or self._holds(request.cookies.get(COOKIE, ""))):
            raise web.HTTPForbidden(text=say("console", "token_needed"))

    def _holds(self, token: str) -> bool:
        return bool(token) and hmac.compare_digest(token.encode("utf-8", "replace"), self.token)

    def _our_host(self, request: web.Request) -> bool:
        """``Host`` names loopback, on the configured port or the one the request came to."""
        match = re.fullmatch(r"(127\.0\.0\.1|localhost|\[::1\]):(\d{1,5})", request.headers.get("Host", "").lower())
        if match is None:
            return False
        ports = {self.settings.server.port}
        if request.transport is not None and (sockname := request.transport.get_extra_info("sockname")):
            ports.add(sockname[1])
        return int(match.group(2)) in ports

    @_loopback_only
    async def redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/console/")

    @_loopback_only
    async def page(self, request: web.Request) -> web.Response:
        if "token" in request.query:  # the URL printed at start: keep the token in a cookie, out of the address
            response = web.HTTPSeeOther("/console/")
            if self._holds(request.query["token"]):  # (a wrong one beside a good cookie changes nothing)
                response.set_cookie(COOKIE, request.query["token"], path="/console", httponly=True,
                                    samesite="Strict")
            raise response
        html = page("console.html.j2", bureau=self.settings.bureau.name)
        scripts = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()}'"
                           for code in re.findall(r"<script>(.*?)</script>", html, re.S))
        policy = (f"default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; img-src 'self'; "
                  "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
        return web.Response(text=html, content_type="text/html", headers={"Content-Security-Policy": policy})

    @_loopback_only
    async def people(self, request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(self._people))

    def _people(self) -> list[dict]:
        """Everyone the console can be: configured roles first, then the inspectors."""
        found: dict[str, dict] = {}

        def add(user: str, role: str, unit: str = "") -> None:
            entry = found.setdefault(user, {"id": user, "name": user, "roles": []})
            entry["roles"].append((role, unit))

        roles = self.settings.roles
        for user in entries_on(roles.admins, PLATFORM):
            add(user, "admin")
        for user in entries_on(roles.supervisors, PLATFORM):
            add(user, "supervisor")
        for unit_id, unit in roles.units.items():
            for role in ("leads", "approvers", "accountability"):
                for user in entries_on(getattr(unit, role), PLATFORM):
                    add(user, role, unit_id)
        with reading(self.engine) as session:
            units = {u.id: u.name for u in session.exec(select(Unit))}
            for entry in found.values():
                entry["roles"] = [say("console", "role", role=role, unit=units.get(unit, unit))
                                  for role, unit in entry["roles"]]
            for inspector in session.exec(select(Inspector).where(Inspector.listed, Inspector.active)
                                          .order_by(Inspector.unit_id, Inspector.id)):
                entry = found.setdefault(inspector.id, {"id": inspector.id, "name": inspector.name, "roles": []})
                entry["name"] = inspector.name
                entry["roles"].append(say("console", "role", role="inspector",
                                          unit=units.get(inspector.unit_id, inspector.unit_id)))
        return list(found.values())

    @_loopback_only
    async def messages(self, request: web.Request) -> web.Response:
        user = request.query.get("user", "")
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text=say("console", "bad_request")) from None
        return web.json_response(await asyncio.to_thread(self._messages, user, after))

    def _messages(self, user: str, after: int) -> list[dict]:
        with reading(self.engine) as session:
            rows = session.exec(select(ConsoleMessage).where(
                col(ConsoleMessage.id) > after,
                or_(col(ConsoleMessage.conversation) == GROUP_CONVERSATION, col(ConsoleMessage.conversation) == user))
                .order_by(col(ConsoleMessage.id)).limit(500)).all()
            return [{"id": r.id, "conversation": "group" if r.conversation == GROUP_CONVERSATION else "private",
                     "author": r.author, "kind": r.kind, "payload": r.payload, "at": r.at.isoformat()} for r in rows]

    async def _body(self, request: web.Request) -> dict:
        if request.content_type != "application/json":  # a form or text/plain POST needs no preflight
            raise web.HTTPUnsupportedMediaType(text=say("console", "json_only"))
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text=say("console", "bad_request")) from None
        if not isinstance(body, dict) or not isinstance(body.get("user"), str) or not body["user"]:
            raise web.HTTPBadRequest(text=say("console", "bad_request"))
        return body

    @_loopback_only
    async def send(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        user, text = body["user"], str(body.get("text", "")).strip()
        chat = "group" if body.get("chat") == "group" else "private"
        if not text:
            raise web.HTTPBadRequest(text=say("console", "bad_request"))
        conversation = GROUP_CONVERSATION if chat == "group" else user
        await asyncio.to_thread(self._record, conversation, user, {"text": text})
        reply_to = Destination(PLATFORM, GROUP, "default") if chat == "group" else Destination(PLATFORM, USER, user)
        await self.take(Event(PLATFORM, uuid.uuid4().hex, user, chat, reply_to, clock_now(),
                              chat_id="group" if chat == "group" else "", text=strip_mentions(text)))
        return web.json_response({"ok": True})

    @_loopback_only
    async def click(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        choices = body.get("choices") or {}
        if not isinstance(choices, dict) or not all(isinstance(v, list) for v in choices.values()):
            raise web.HTTPBadRequest(text=say("console", "bad_request"))
        card_id, action = str(body.get("card_id", "")), str(body.get("action", ""))
        if not card_id or not action:
            raise web.HTTPBadRequest(text=say("console", "bad_request"))
        click_id = body.get("click_id") or ""
        if not isinstance(click_id, str) or (click_id and not CLICK_ID.fullmatch(click_id)):
            raise web.HTTPBadRequest(text=say("console", "bad_request"))
        user = body["user"]
        # The same click again (a retry) is the same delivery: taken once, as WeCom and DingTalk redeliveries are.
        key = f"click:{hashlib.sha256(user.encode()).hexdigest()[:16]}:{click_id}" if click_id else uuid.uuid4().hex
        clicked = CardAction(card_id, action, str(body.get("value", "")),
                             {str(k): [str(x) for x in v] for k, v in choices.items()}, update_token=card_id)
        new = await self.take(Event(PLATFORM, key, user, "private", Destination(PLATFORM, USER, user),
                                    clock_now(), action=clicked))
        return web.json_response({"ok": True, "duplicate": not new})

    @_loopback_only
    async def upload(self, request: web.Request) -> web.Response:
        if request.content_length and request.content_length > MAX_UPLOAD:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_UPLOAD, actual_size=request.content_length)
        form = await request.post()
        user, upload = form.get("user"), form.get("file")
        if not isinstance(user, str) or not user or not isinstance(upload, web.FileField):
            raise web.HTTPBadRequest(text=say("console", "bad_request"))
        data = upload.file.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_UPLOAD, actual_size=len(data))
        kind = "image" if upload.content_type.startswith("image/") else (
            "video" if upload.content_type.startswith("video/") else "file")
        digest = await asyncio.to_thread(self._store, data, upload.content_type)
        await asyncio.to_thread(self._record, user, user, {"file": upload.filename, "size": len(data)})
        media = Media(kind, f"console:{digest}", upload.filename or "", digest, len(data))
        await self.take(Event(PLATFORM, uuid.uuid4().hex, user, "private", Destination(PLATFORM, USER, user),
                              clock_now(), media=media))
        return web.json_response({"ok": True})

    @_loopback_only
    async def location(self, request: web.Request) -> web.Response:
        """A location sent in the private chat (what WeCom's 位置 message is): coordinates
        in degrees and a label; evidence when a task was chosen with 取证 (art. 14)."""
        body = await self._body(request)
        user, label = body["user"], str(body.get("label", "")).strip()[:LABEL_CHARS]
        try:
            latitude, longitude = float(body["latitude"]), float(body["longitude"])
        except (KeyError, TypeError, ValueError):
            raise web.HTTPBadRequest(text=say("console", "bad_location")) from None
        if not valid_coordinates(latitude, longitude):
            raise web.HTTPBadRequest(text=say("console", "bad_location"))
        at = clock_now()
        record = evidence.location_record(latitude, longitude, label, at)
        digest = await asyncio.to_thread(self._store, record, evidence.LOCATION_TYPE)
        await asyncio.to_thread(self._record, user, user, {"location": label, "latitude": latitude,
                                                           "longitude": longitude})
        media = Media(LOCATION, "", "", digest, len(record), latitude=latitude, longitude=longitude, label=label)
        await self.take(Event(PLATFORM, uuid.uuid4().hex, user, "private", Destination(PLATFORM, USER, user), at,
                              media=media))
        return web.json_response({"ok": True})

    @_loopback_only
    async def blob(self, request: web.Request) -> web.Response:
        """A picture the bot sent (a summary's chart)."""
        found = await asyncio.to_thread(self._load, request.match_info["sha256"])
        if found is None:
            raise web.HTTPNotFound()
        data, content_type = found
        content_type = (content_type or "").split(";", 1)[0].strip().lower()
        headers = {"Content-Security-Policy": "default-src 'none'; sandbox"}
        if content_type not in INLINE_IMAGES:  # an upload's own type (HTML, SVG …) never renders here
            content_type = "application/octet-stream"
            headers["Content-Disposition"] = f"attachment; filename={request.match_info['sha256'][:64]}"
        return web.Response(body=data, content_type=content_type, headers=headers)

    def _load(self, digest: str) -> tuple[bytes, str] | None:
        with transaction(self.engine) as session:
            return evidence.load(session, digest)

    def _store(self, data: bytes, content_type: str) -> str:
        with transaction(self.engine) as session:
            return evidence.store(session, data, content_type)

    def _record(self, conversation: str, user: str, payload: dict) -> None:
        with transaction(self.engine) as session:
            session.add(ConsoleMessage(conversation=conversation, author=user, kind="typed", payload=payload))
