"""Whoever must be told falls back tier by tier to someone reachable: a unit's leads,
then its approvers, then the admins (art. 18, 20) — one rule, ``recipients.first_reachable``,
behind the approval cards, the follow-up receivers and the plan reminders."""

from __future__ import annotations

import pytest

from bot.batches.followups import receivers
from bot.chat import recipients
from bot.outbound import USER, Destination
from bot.settings import Settings

WECOM_APP = {"corp_id": "ww1", "agent_id": 1000002, "secret": "s", "token": "t",
             "encoding_aes_key": "k" * 43}

pytestmark = pytest.mark.usefixtures("clean_environment")  # no stray configuration (conftest.py)


def _settings(**unit) -> Settings:
    return Settings(wecom=WECOM_APP, roles={"admins": ["boss"], "units": {"U1": unit}})


def _wecom(*users: str) -> list[Destination]:
    return [Destination("wecom", USER, user) for user in users]


@pytest.mark.parametrize(("unit", "told"), [
    ({"leads": ["lead"], "approvers": ["appr"]}, ["lead"]),
    ({"approvers": ["appr"]}, ["appr"]),
    ({}, ["boss"]),
    # leads named on a platform that is not enabled reach nobody: the next tier is told
    ({"leads": ["dingtalk:lead"], "approvers": ["wecom:appr"]}, ["appr"]),
    ({"leads": ["dingtalk:lead"]}, ["boss"]),
])
def test_a_units_follow_ups_go_to_the_first_tier_that_reaches_someone(unit, told):
    assert receivers(_settings(**unit), "U1") == _wecom(*told)


def test_people_left_out_make_a_tier_fall_to_the_next():
    settings = _settings(approvers=["appr"], leads=["lead"])
    tiers = ([*recipients.unit_people(settings, "U1", "approvers")], ["lead"], ["boss"])
    assert recipients.first_reachable(settings, tiers) == _wecom("appr")
    assert recipients.first_reachable(settings, tiers, leave_out={("wecom", "appr")}) == _wecom("lead")
    assert recipients.first_reachable(settings, tiers, leave_out={("wecom", "appr"), ("wecom", "lead"),
                                                                  ("wecom", "boss")}) == []
