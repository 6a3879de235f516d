"""The console's page and its small JSON API (loopback only).

``GET /console/`` the page; ``GET /console/api/people`` who one can be;
``GET /console/api/messages?user=&after=`` the group and that user's private chat;
``POST /console/api/send`` a typed message; ``POST /console/api/click`` a card button;
``POST /console/api/upload`` a photo or file for a task (evidence).
"""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from sqlalchemy import Engine, or_
from sqlmodel import col, select

from bot.chat.events import CardAction, Event, Media
from bot.chat.recipients import entries_on
from bot.chat.router import strip_mentions
from bot.clock import now as clock_now
from bot.console.sender import GROUP_CONVERSATION
from bot.outbound import GROUP, USER, Destination
from bot.settings import Settings
from bot.texts import page, say
from storage import evidence
from storage.db import reading, transaction
from storage.models import ConsoleMessage, Inspector, Unit

PLATFORM = "console"
MAX_UPLOAD = 20 * 1024 * 1024
Take = Callable[[Event], Awaitable[bool]]
_R = TypeVar("_R", bound=web.StreamResponse)


def routes(settings: Settings, engine: Engine, take: Take) -> list[web.RouteDef]:
    console = Console(settings, engine, take)
    return [web.get("/console", console.redirect), web.get("/console/", console.page),
            web.get("/console/api/people", console.people), web.get("/console/api/messages", console.messages),
            web.post("/console/api/send", console.send), web.post("/console/api/click", console.click),
            web.post("/console/api/upload", console.upload), web.get("/console/api/blob/{sha256}", console.blob)]


def _loopback_only(handler: Callable[[Console, web.Request], Awaitable[_R]]
                   ) -> Callable[[Console, web.Request], Awaitable[_R]]:
    async def guarded(self: Console, request: web.Request) -> _R:
        try:
            local = ipaddress.ip_address(request.remote or "").is_loopback
        except ValueError:
            local = False
        if not local:  # the console can act as anyone: never beyond this machine
            raise web.HTTPForbidden(text=say("console", "loopback_only"))
        return await handler(self, request)
    return guarded


class Console:
    def __init__(self, settings: Settings, engine: Engine, take: Take) -> None:
        self.settings, self.engine, self.take = settings, engine, take

    @_loopback_only
    async def redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/console/")

    @_loopback_only
    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=page("console.html.j2", bureau=self.settings.bureau.name),
                            content_type="text/html")

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
        user = body["user"]
        clicked = CardAction(card_id, action, str(body.get("value", "")),
                             {str(k): [str(x) for x in v] for k, v in choices.items()}, update_token=card_id)
        await self.take(Event(PLATFORM, uuid.uuid4().hex, user, "private", Destination(PLATFORM, USER, user),
                              clock_now(), action=clicked))
        return web.json_response({"ok": True})

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
    async def blob(self, request: web.Request) -> web.Response:
        """A picture the bot sent (a summary's chart)."""
        found = await asyncio.to_thread(self._load, request.match_info["sha256"])
        if found is None:
            raise web.HTTPNotFound()
        data, content_type = found
        return web.Response(body=data, content_type=content_type or "application/octet-stream")

    def _load(self, digest: str) -> tuple[bytes, str] | None:
        with transaction(self.engine) as session:
            return evidence.load(session, digest)

    def _store(self, data: bytes, content_type: str) -> str:
        with transaction(self.engine) as session:
            return evidence.store(session, data, content_type)

    def _record(self, conversation: str, user: str, payload: dict) -> None:
        with transaction(self.engine) as session:
            session.add(ConsoleMessage(conversation=conversation, author=user, kind="typed", payload=payload))
