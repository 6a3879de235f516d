"""Which chat platforms this deployment speaks (WeCom, DingTalk, the console) and the
entries their deliveries arrive through: the one place that reads it from the
configuration. The app's senders and callbacks, notices, summaries, reminders and
metrics all ask here, so a platform that cannot send is skipped by all of them alike; with
WeCom and DingTalk both on, it also names the bare `[roles]` ids that may be two people."""

import logging

from bot import roles
from bot.settings import Settings
from bot.texts import say
from storage.models import Inspector

log = logging.getLogger(__name__)

WECOM, DINGTALK, CONSOLE = "wecom", "dingtalk", "console"
PLATFORMS = (WECOM, DINGTALK, CONSOLE)

# The entries deliveries arrive through.
WECOM_APP = "wecom_app"  # the self-built app's callback (XML)
WECOM_AIBOT = "wecom_aibot"  # the AI bot's callback (JSON)
DINGTALK_HTTP = "dingtalk_http"  # robot messages and card clicks as HTTP callbacks
DINGTALK_STREAM = "dingtalk_stream"  # … over the Stream connection instead
DINGTALK_EVENTS = "dingtalk_events"  # the event subscription
CONSOLE_PAGE = "console_page"  # the local console page


def sends(settings: Settings, platform: str) -> bool:
    """Whether ``platform`` is configured well enough to send: a WeCom app (its corp id,
    AgentId and secret: bot.settings refuses a secret without the AgentId), a DingTalk
    app (its key and secret), the console (enabled)."""
    if platform == WECOM:
        wecom = settings.wecom
        return bool(wecom.corp_id and wecom.agent_id is not None and wecom.secret)
    if platform == DINGTALK:
        return bool(settings.dingtalk.app_key and settings.dingtalk.app_secret)
    return platform == CONSOLE and settings.console.enabled


def enabled(settings: Settings) -> list[str]:
    """The platforms that send, in a fixed order."""
    return [platform for platform in PLATFORMS if sends(settings, platform)]


def entries(settings: Settings) -> frozenset[str]:
    """The entries open to deliveries, as configured."""
    wecom, dingtalk = settings.wecom, settings.dingtalk
    found = set()
    if wecom.token and wecom.encoding_aes_key and wecom.corp_id:
        found.add(WECOM_APP)
    if wecom.aibot.token and wecom.aibot.encoding_aes_key:
        found.add(WECOM_AIBOT)
    if sends(settings, DINGTALK):  # robot messages and card clicks come back to the app that sent
        found.add(DINGTALK_STREAM if dingtalk.mode == "stream" else DINGTALK_HTTP)
    if dingtalk.app_key and dingtalk.event_token and dingtalk.event_aes_key:
        found.add(DINGTALK_EVENTS)
    if settings.console.enabled:
        found.add(CONSOLE_PAGE)
    return frozenset(found)


def can_push_to_group(settings: Settings, platform: str) -> bool:
    """Whether group announcements and summaries have somewhere to go."""
    return ((platform == WECOM and settings.wecom.webhook_key is not None)
            or (platform == DINGTALK and bool(settings.dingtalk.group_conversation_id))
            or platform == CONSOLE)


def user_id(inspector: Inspector, platform: str) -> str | None:
    """An inspector's user id on ``platform``, from the directory."""
    ids = {WECOM: inspector.wecom_userid, DINGTALK: inspector.dingtalk_userid, CONSOLE: inspector.id}
    return ids.get(platform) or None


def ambiguous_entries(settings: Settings) -> list[str]:
    """The bare ids of ``[roles]`` (each once) when WeCom and DingTalk are both on."""
    if not (sends(settings, WECOM) and sends(settings, DINGTALK)):
        return []
    return list(dict.fromkeys(entry for entry in roles.entries(settings) if roles.is_bare(entry)))


def warn_ambiguous_entries(settings: Settings) -> list[str]:
    """Log a warning naming the bare ids, if any (at ``serve``'s start and by every CLI command)."""
    found = ambiguous_entries(settings)
    if found:
        log.warning(say("config", "bare_role_ids", ids=found))
    return found
