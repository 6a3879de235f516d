"""Sending outbox messages through DingTalk (PROTOCOLS.md C.1, C.4, C.5): private texts
and images through the robot (oToMessages/batchSend), cards as interactive cards
(createAndDeliver to ``IM_ROBOT.<userId>``), card updates (PUT card/instances), group
pushes and group answers through groupMessages/send; an answer to a message goes
through its ``sessionWebhook`` while that is valid.

Idempotency at the platform: a card's ``outTrackId`` can be created once, so a resend of
a delivered card is refused as a duplicate, and a card update is a PUT. DingTalk offers
no duplicate check for texts: a text resent after a timeout may, rarely, show twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import timedelta

from bot.chat.dispatcher import Failed, Outcome, Retry, Sent
from bot.chat.long_text import split_text
from bot.clock import now as clock_now
from bot.dingtalk import api as dingtalk_api
from bot.dingtalk.api import DingTalkAPI, Refused, Unreachable
from bot.dingtalk.cards import card_params, update_params
from bot.outbound import CARD, GROUP, REPLY, USER, Card, CardUpdate, Destination, File, Image, Message, Text
from bot.settings import Settings
from storage import evidence
from storage.db import transaction
from storage.outbox import APP, RateLimit

log = logging.getLogger(__name__)

# DingTalk publishes no per-person figure for robot messages; the custom group robot's
# 20 a minute (C.2) is used for both. A send's slot counts from the latest it can reach
# DingTalk (``REACH``) until its answer shows it had it (``storage.outbox.settle``), so
# the windows are DingTalk's own, with a second to spare.
REACH = timedelta(seconds=dingtalk_api.TIMEOUT.total or 10)
_LATE = timedelta(seconds=1)
USER_LIMITS = (RateLimit(20, timedelta(minutes=1) + _LATE),)
GROUP_LIMITS = (RateLimit(20, timedelta(minutes=1) + _LATE),)
TEXT_BYTES = 4000
SESSION_MARGIN_MS = 60_000  # a sessionWebhook this close to expiry is not used
BUSY_WAIT = 60.0


class DingTalkSender:
    platform = "dingtalk"
    reach = REACH  # how late a claimed send may reach DingTalk (the dispatcher's rate slots)

    def __init__(self, settings: Settings, api: DingTalkAPI, action_key: bytes) -> None:
        self.settings, self.api, self.action_key = settings, api, action_key
        self.link = settings.server.public_base_url.rstrip("/") + "/public/"
        # Every call to the app's API counts ([outbox] dingtalk_calls_per_minute).
        self.app_limits = (RateLimit(settings.outbox.dingtalk_calls_per_minute, timedelta(minutes=1) + _LATE),)

    def limits(self, rate_key: str) -> Sequence[RateLimit]:
        kind = rate_key.split(":", 2)[1]
        return {USER: USER_LIMITS, GROUP: GROUP_LIMITS, APP: self.app_limits}.get(kind, ())

    async def send(self, destination: Destination, message: Message, *, in_doubt: bool) -> Outcome:
        try:
            if isinstance(message, Text) and _session_open(destination.via):
                outcome = await self._through_session(destination.via.partition("|")[2], message.text)
                if outcome is not None:
                    return outcome
            if destination.kind == USER:
                return await self._to_user(destination.address, message, in_doubt)
            if destination.kind == CARD and isinstance(message, CardUpdate):
                return await self._update_card(destination.address, message)
            if destination.kind == GROUP:
                conversation = self.settings.dingtalk.group_conversation_id
                if not conversation:
                    return Failed("no group configured ([dingtalk] group_conversation_id)")
                return await self._to_group(conversation, message)
            if destination.kind == REPLY:
                return await self._to_group(destination.address, message)
        except Unreachable as exc:
            if exc.in_doubt:  # it may have landed: wait until it would have before trying again
                return Retry(str(exc), in_doubt=True, after=2 * (dingtalk_api.TIMEOUT.total or 0))
            return Retry(str(exc))
        except Refused as exc:
            return _classify(exc)
        return Failed(f"cannot send {type(message).__name__} to a DingTalk {destination.kind}")

    async def _through_session(self, url: str, text: str) -> Outcome | None:
        """An answer through the message's sessionWebhook; None when DingTalk no longer takes it."""
        answers: list[int] = []
        for part in split_text(text, TEXT_BYTES):
            answer = await self.api.post_url(url, {"msgtype": "text", "text": {"content": part}})
            if answer.get("errcode", 0) != 0:
                if answers:  # some parts went out: the rest follows the usual way, in doubt
                    return Retry(f"sessionWebhook errcode {answer.get('errcode')}", in_doubt=True)
                return None
            answers.append(answer.get("errcode", 0))
        return Sent({"session_webhook": len(answers)})

    async def _to_user(self, user: str, message: Message, in_doubt: bool) -> Outcome:
        if isinstance(message, Card):
            return await self._card(user, message, in_doubt)
        sent: list[str | None] = []
        for key, param in await self._robot_messages(message):
            answer = await self.api.call("POST", "/v1.0/robot/oToMessages/batchSend", {
                "robotCode": self.api.robot_code, "userIds": [user], "msgKey": key,
                "msgParam": json.dumps(param, ensure_ascii=False)})
            if user in (answer.get("invalidStaffIdList") or []):
                return Failed(f"invalid user {user}", _kept(answer))
            if user in (answer.get("flowControlledStaffIdList") or []):
                return Retry("flow controlled", in_doubt=bool(sent), after=BUSY_WAIT)
            sent.append(answer.get("processQueryKey"))
        return Sent({"processQueryKeys": sent}) if sent else Failed("the image is no longer stored")

    async def _to_group(self, conversation: str, message: Message) -> Outcome:
        sent = []
        for key, param in await self._robot_messages(message):
            answer = await self.api.call("POST", "/v1.0/robot/groupMessages/send", {
                "robotCode": self.api.robot_code, "openConversationId": conversation, "msgKey": key,
                "msgParam": json.dumps(param, ensure_ascii=False)})
            sent.append(answer.get("processQueryKey"))
        return Sent({"processQueryKeys": sent}) if sent else Failed("cannot send this to a group")

    async def _robot_messages(self, message: Message) -> list[tuple[str, dict]]:
        """(msgKey, msgParam) pairs for a text (split when long) or an image."""
        if isinstance(message, Text):
            return [("sampleText", {"content": part}) for part in split_text(message.text, TEXT_BYTES)]
        if isinstance(message, Image):
            found = await asyncio.to_thread(self._blob, message.sha256)
            if found is None:
                return []
            data, content_type = found
            media_id = await self.api.upload_image(data, f"{message.sha256[:16]}.png", content_type or "image/png")
            return [("sampleImageMsg", {"photoURL": media_id})]
        if isinstance(message, File):
            found = await asyncio.to_thread(self._blob, message.sha256)
            if found is None:
                return []
            data, content_type = found
            media_id = await self.api.upload_image(data, message.name, content_type or "application/octet-stream",
                                                   kind="file")
            file_type = message.name.rsplit(".", 1)[-1] if "." in message.name else "file"
            return [("sampleFile", {"mediaId": media_id, "fileName": message.name, "fileType": file_type})]
        return []

    async def _card(self, user: str, card: Card, in_doubt: bool) -> Outcome:
        dingtalk = self.settings.dingtalk
        if not dingtalk.card_template_id:
            return Failed("no card template configured ([dingtalk] card_template_id)")
        body: dict = {
            "cardTemplateId": dingtalk.card_template_id, "outTrackId": card.card_id, "userIdType": 1,
            "cardData": {"cardParamMap": card_params(card, user=user, key=self.action_key, link=self.link)},
            "openSpaceId": f"dtv1.card//IM_ROBOT.{user}",
            "imRobotOpenSpaceModel": {"supportForward": False},
            "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT", "robotCode": self.api.robot_code},
        }
        if dingtalk.mode == "stream":
            body["callbackType"] = "STREAM"
        else:
            body |= {"callbackType": "HTTP", "callbackRouteKey": dingtalk.card_route_key}
        try:
            answer = await self.api.call("POST", "/v1.0/card/instances/createAndDeliver", body)
        except Refused as exc:
            if not _duplicate(exc):
                raise
            if in_doubt:
                return Sent({"duplicate": True, "update_token": card.card_id})  # an earlier attempt made it
            # An earlier attempt created it but could not deliver it (flow control): deliver it now.
            answer = await self.api.call("POST", "/v1.0/card/instances/deliver", {
                k: body[k] for k in ("outTrackId", "userIdType", "openSpaceId", "imRobotOpenDeliverModel")})
        result = answer.get("result") or {}  # deliver: a list of results; createAndDeliver: {deliverResults}
        results = result if isinstance(result, list) else result.get("deliverResults") or []
        failed = [str(r.get("errorMsg") or "not delivered") for r in results if not r.get("success")]
        if failed and all("flow" in error.lower() or "限流" in error for error in failed):
            return Retry(f"card flow controlled: {failed[0]}", after=BUSY_WAIT)
        if failed or not results:  # a 200 does not mean it was delivered (C.5)
            return Failed(f"card not delivered: {failed[0] if failed else 'no delivery result'}", {"results": results})
        return Sent({"outTrackId": card.card_id, "update_token": card.card_id})  # updated by outTrackId

    async def _update_card(self, user: str, update: CardUpdate) -> Outcome:
        params = update_params(update, user=user, key=self.action_key, link=self.link)
        await self.api.call("PUT", "/v1.0/card/instances", {
            "outTrackId": update.card_id, "cardData": {"cardParamMap": params}, "userIdType": 1,
            "cardUpdateOptions": {"updateCardDataByKey": True, "updatePrivateDataByKey": True}})
        return Sent({"outTrackId": update.card_id})

    def _blob(self, digest: str) -> tuple[bytes, str] | None:
        with transaction(self.api.engine) as session:
            return evidence.load(session, digest)


def _duplicate(exc: Refused) -> bool:
    """DingTalk refused a second card with this outTrackId (the exact code is unconfirmed)."""
    text = f"{exc.code} {exc.message}".lower()
    return exc.status == 400 and "outtrackid" in text and ("exist" in text or "duplicat" in text)


def _session_open(via: str) -> bool:
    expires, _, url = via.partition("|")
    return bool(url) and expires.isdigit() and int(expires) - SESSION_MARGIN_MS > clock_now().timestamp() * 1000


def _classify(exc: Refused) -> Outcome:
    code = exc.code.lower()
    if exc.status == 429 or "qpslimit" in code or "throttl" in code or "flowcontrol" in code:
        return Retry(f"HTTP {exc.status} {exc.code}", after=BUSY_WAIT)
    if exc.status == 401:
        return Retry(f"HTTP 401 {exc.code}: access token")
    return Failed(f"HTTP {exc.status} {exc.code}", {"code": exc.code})


def _kept(answer: dict) -> dict:
    return {k: answer[k] for k in ("processQueryKey", "invalidStaffIdList", "flowControlledStaffIdList")
            if answer.get(k)}
