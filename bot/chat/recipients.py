"""Who to tell, on which platform: configured people (SPEC §1) and inspectors by their
platform accounts in the directory."""

from __future__ import annotations

from collections.abc import Container, Iterable

from bot.chat import platforms
from bot.outbound import USER, Destination
from bot.roles import PLATFORMS
from bot.settings import Settings
from storage.models import Inspector


def entries_on(entries: list[str], platform: str) -> list[str]:
    """The user ids a configured list names on ``platform`` (bare ids count on every one)."""
    found = []
    for entry in entries:
        prefix, sep, user = entry.partition(":")
        if sep and prefix in PLATFORMS:
            if prefix == platform:
                found.append(user)
        else:
            found.append(entry)
    return list(dict.fromkeys(found))


def admins(settings: Settings, platform: str) -> list[str]:
    return entries_on(settings.roles.admins, platform)


def unit_people(settings: Settings, unit_id: str | None, role: str) -> list[str]:
    """``[roles.units.<unit>] leads | approvers | accountability`` as configured."""
    unit = settings.roles.units.get(unit_id or "")
    return list(getattr(unit, role)) if unit else []


def people(settings: Settings, entries: list[str]) -> list[Destination]:
    """Private destinations for configured people on every enabled platform."""
    return [Destination(platform, USER, user) for platform in platforms.enabled(settings)
            for user in entries_on(entries, platform)]


def first_reachable(settings: Settings, tiers: Iterable[list[str]],
                    leave_out: Container[tuple[str, str]] = ()) -> list[Destination]:
    """The people of the first tier (configured entries, most specific first) that reaches
    someone on an enabled platform, less those ``leave_out`` names as (platform, user):
    whoever must be told falls back to the next tier rather than to nobody."""
    for entries in tiers:
        found = [d for d in people(settings, entries) if (d.platform, d.address) not in leave_out]
        if found:
            return found
    return []


def inspector(settings: Settings, person: Inspector) -> list[Destination]:
    """Private destinations for an inspector, by their accounts in the directory."""
    found = []
    for platform in platforms.enabled(settings):
        user = platforms.user_id(person, platform)
        if user:
            found.append(Destination(platform, USER, user))
    return found
