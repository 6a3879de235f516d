"""Who may do what (SPEC §1). Roles come from configuration and the inspector directory.

A user id in configuration matches on every platform; ``wecom:ID``, ``dingtalk:ID`` or
``console:ID`` restricts it to one platform. With WeCom and DingTalk both on, a bare id
may be two different people (an id on one platform is not the same person's on the
other): ``bot.chat.platforms.ambiguous_entries`` finds them (it knows which platforms are on).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.settings import Settings

PLATFORMS = ("wecom", "dingtalk", "console", "cli")


@dataclass(frozen=True)
class Actor:
    """Someone acting: a platform and the user id on it."""

    platform: str
    user_id: str

    @property
    def label(self) -> str:
        return f"{self.platform}:{self.user_id}"

    @classmethod
    def parse(cls, text: str, default_platform: str = "cli") -> Actor:
        """``wecom:zhangsan`` or a bare ``zhangsan`` (on ``default_platform``)."""
        platform, sep, user = text.partition(":")
        if sep and platform in PLATFORMS:
            return cls(platform, user)
        return cls(default_platform, text)


def named(entries: list[str], actor: Actor) -> bool:
    """Whether a configured list of user ids names ``actor``."""
    for entry in entries:
        platform, sep, user = entry.partition(":")
        if sep and platform in PLATFORMS:
            if (platform, user) == (actor.platform, actor.user_id):
                return True
        elif entry == actor.user_id:
            return True
    return False


def is_admin(settings: Settings, actor: Actor) -> bool:
    return named(settings.roles.admins, actor)


def entries(settings: Settings) -> list[str]:
    """Every user id ``[roles]`` names, in the order written."""
    roles = settings.roles
    found = [*roles.admins, *roles.supervisors]
    for unit in roles.units.values():
        found += [*unit.leads, *unit.approvers, *unit.accountability]
    return found


def is_bare(entry: str) -> bool:
    """An entry without a platform prefix: it matches on every platform."""
    platform, sep, _ = entry.partition(":")
    return not (sep and platform in PLATFORMS)
