"""Which chat platforms this deployment speaks (WeCom, DingTalk or both)."""

from bot.settings import Settings


def enabled(settings: Settings) -> list[str]:
    """Platforms configured well enough to send: a WeCom app, a DingTalk app."""
    found = []
    wecom = settings.wecom
    if wecom.corp_id and wecom.agent_id is not None and wecom.secret:
        found.append("wecom")
    dingtalk = settings.dingtalk
    if dingtalk.app_key and dingtalk.app_secret:
        found.append("dingtalk")
    if settings.console.enabled:
        found.append("console")
    return found


def can_push_to_group(settings: Settings, platform: str) -> bool:
    """Whether group announcements and summaries have somewhere to go."""
    return ((platform == "wecom" and settings.wecom.webhook_key is not None)
            or (platform == "dingtalk" and bool(settings.dingtalk.group_conversation_id))
            or platform == "console")


def user_id(inspector, platform: str) -> str | None:
    """An inspector's user id on ``platform``, from the directory."""
    ids = {"wecom": inspector.wecom_userid, "dingtalk": inspector.dingtalk_userid, "console": inspector.id}
    return ids.get(platform) or None
