"""The whole workflow (SPEC §2), the same steps on each platform's fake — WeCom and
DingTalk, from the same handlers: 新建抽查 in the group, 公示方案, 抽取, cards to every
inspector, one recusal, confirmations, inspections with a photo, results by card and by
command, one returned result, approvals, publication — with a refused unauthorised
attempt and a replayed click. At the end the database and the audit chain agree."""

from __future__ import annotations

from tests.support.workflow import whole_workflow


async def test_a_batch_from_creation_to_every_result_published(walk, engine):
    await whole_workflow(walk, engine)
