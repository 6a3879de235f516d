"""The workflow walked in the local console, in headless Chromium (SPEC §2; issue 5):
the admin drafts, publishes and draws in the group; inspectors confirm, one recuses
with a reason card; inspections are marked done with a photo; results go in by card
and by command; the approver approves, returns one, and approves it after the fix.

Needs Debian's ``chromium`` and the ``playwright`` package (no browser download);
skipped with a message where either is missing. ``.ci/run`` installs Chromium.
"""

from __future__ import annotations

import shutil

import pytest
from sqlmodel import Session, select

from bot.app import create_app
from bot.settings import Settings
from storage import audit
from storage.models import Assignment, Batch, Evidence, Result, Task
from storage.sealing import new_key
from tests.support.batch_district import seed_district
from tests.support.wecom_bot import eventually

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt install chromium)")]

ROLES = {"admins": ["console:admin"], "units": {"S-DC": {"approvers": ["console:approver"]},
                                                "S-XC": {"approvers": ["console:approver"]}}}


@pytest.fixture
async def site(engine, tmp_path, aiohttp_server):
    seed_district(engine, tmp_path)
    settings = Settings(console={"enabled": True}, roles=ROLES, security={"keys": [new_key()]},
                        bureau={"default_lead": "U-XY"})
    server = await aiohttp_server(create_app(settings, engine, ticker=False, console_token="browser-start"))
    return str(server.make_url("/console/").with_query(token="browser-start"))  # as printed at start


@pytest.fixture
async def page(site):
    async with playwright.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = await browser.new_page()
        await page.goto(site)
        yield page
        await browser.close()


class Visitor:
    """Someone at the console, acting as one person after another."""

    def __init__(self, page) -> None:
        self.page = page

    async def be(self, user: str) -> None:
        await self.page.locator(f'#people button[data-user="{user}"]').click()
        await self.page.locator(f'#people button[data-user="{user}"][aria-pressed="true"]').wait_for()
        await self.page.locator(f'body[data-synced-user="{user}"]').wait_for()

    async def _say(self, log: str, form_input: str, text: str) -> str:
        answers = self.page.locator(f"#{log} .msg:not(.mine)")
        before = await answers.count()
        await self.page.locator(f"#{form_input}").fill(text)
        await self.page.locator(f"#{form_input}").press("Enter")
        await answers.nth(before).wait_for(timeout=15_000)
        return await answers.nth(before).inner_text()  # the answer (a card may follow it)

    async def group(self, text: str) -> str:
        return await self._say("group-log", "group-input", text)

    async def private(self, text: str) -> str:
        return await self._say("private-log", "private-input", text)

    async def press(self, card_prefix: str, label: str, option: str | None = None) -> None:
        """Click a button on the latest card whose id starts so; wait for the bot's answer."""
        card = self.page.locator(f'#private-log [data-card^="{card_prefix}"]').last
        await card.wait_for(timeout=15_000)
        answers = self.page.locator("#private-log .msg:not(.mine)")
        before = await answers.count()
        if option is not None:
            await card.locator(f'input[type=radio][value="{option}"]').check()
        await card.get_by_role("button", name=label).click()
        await answers.nth(before).wait_for(timeout=15_000)

    async def location(self, label: str, latitude: str, longitude: str) -> str:
        """The 发送位置 form: a location in the private chat."""
        answers = self.page.locator("#private-log .msg:not(.mine)")
        before = await answers.count()
        await self.page.locator("#location-label").fill(label)
        await self.page.locator("#location-lat").fill(latitude)
        await self.page.locator("#location-lng").fill(longitude)
        await self.page.get_by_role("button", name="发送位置").click()
        await answers.nth(before).wait_for(timeout=15_000)
        return await answers.nth(before).inner_text()

    async def upload(self, path) -> str:
        answers = self.page.locator("#private-log .msg:not(.mine)")
        before = await answers.count()
        await self.page.locator("#upload-input").set_input_files(str(path))
        await self.page.get_by_role("button", name="发送文件").click()
        await answers.nth(before).wait_for(timeout=15_000)
        return await answers.nth(before).inner_text()


def query(engine, statement):
    with Session(engine) as session:
        return list(session.scalars(statement))


async def test_the_whole_walk_in_the_console(page, engine, tmp_path):
    me = Visitor(page)
    await me.be("admin")
    created = await me.group("@双随 新建抽查 名称=控制台演示 事项=A01,A02 数量=3 方式=交叉随机 截止=2026-12-31")
    batch_id = created.split("批次 ", 1)[1].split("「", 1)[0]
    assert "承诺值" in await me.group(f"@双随 公示方案 批次={batch_id}")
    assert "种子" in await me.group(f"@双随 抽取 批次={batch_id}")
    tasks = query(engine, select(Task).where(Task.batch_id == batch_id).order_by(Task.id))
    assert len(tasks) == 3

    # an inspector may not draw
    first = query(engine, select(Assignment).where(Assignment.task_id == tasks[0].id).order_by(Assignment.position))
    await me.be(first[0].inspector_id)
    assert "管理员" in await me.private(f"抽取 批次={batch_id}")

    # a recusal with the reason card, then everyone confirms
    leaving = first[0]
    await me.press(f"ss-t{tasks[0].id}-a{leaving.id}", "申请回避")
    await me.press(f"ss-rr{tasks[0].id}-", "亲属关系")
    await eventually(lambda: query(engine, select(Assignment).where(Assignment.origin == "replacement")))
    for task in tasks:
        for a in query(engine, select(Assignment).where(Assignment.task_id == task.id, Assignment.status == "drawn")):
            await me.be(a.inspector_id)
            await me.press(f"ss-t{task.id}-a{a.id}", "无利害关系")
    await eventually(lambda: {t.status for t in query(engine, select(Task).where(Task.batch_id == batch_id))}
                     == {"accepted"})

    # inspections, a photo, results by card (two) and by command (one)
    photo = tmp_path / "现场.jpg"
    photo.write_bytes(b"\xff\xd8\xff fake jpeg of the shop front")
    leads = {}
    for n, task in enumerate(tasks):
        lead = min(query(engine, select(Assignment).where(Assignment.task_id == task.id,
                                                          Assignment.status != "recused")), key=lambda a: a.position)
        leads[task.id] = lead.inspector_id
        await me.be(lead.inspector_id)
        assert "检查完成" in await me.private(f"完成 任务={task.id}")
        # the result card follows the answer: wait for it, so the photo's answer is the next message
        await me.page.locator(f'#private-log [data-card^="ss-res{task.id}-"]').last.wait_for(timeout=15_000)
        assert "现有现场记录 1 份" in await me.upload(photo)
        assert query(engine, select(Evidence).where(Evidence.task_id == task.id))
        if n == 0:  # the shop's location, as evidence too (issue 19 item 6)
            answer = await me.location("光明路12号", "39.9151", "116.4043")
            assert "已记录位置「光明路12号」" in answer and "现有现场记录 2 份" in answer
            assert "📍 光明路12号" in await page.locator("#private-log .msg.mine").last.inner_text()
        if n < 2:
            await me.press(f"ss-res{task.id}-1", "提交（已签字）", option=str(n + 1))
            assert "等待审批" in await me.private("无")  # the remarks are asked in the private chat
        else:
            answer = await me.private(f"结果 任务={task.id} 类别=8 说明=「待后续处理」 签字=否 原因=负责人不在场 "
                                      "见证=网格员李四")
            assert "等待审批" in answer and "见证人：网格员李四" in answer
    await eventually(lambda: {t.status for t in query(engine, select(Task).where(Task.batch_id == batch_id))}
                     == {"submitted"})

    # the approver: two approved by card, one returned with a typed reason, fixed, approved by command
    await me.be("approver")
    for task in tasks[:2]:
        (result,) = query(engine, select(Result).where(Result.task_id == task.id))
        await me.press(f"ss-apr{result.id}-", "批准并公示")
    (result,) = query(engine, select(Result).where(Result.task_id == tasks[2].id))
    card = page.locator(f'#private-log [data-card^="ss-apr{result.id}-"]').last
    await card.wait_for(timeout=15_000)
    shown = await card.inner_text()
    assert "网格员李四" in shown and "未签字：负责人不在场" in shown  # the witness, shown to the approver
    await me.press(f"ss-apr{result.id}-", "退回")
    assert "已退回" in await me.private("请写明移交单位")
    await me.be(leads[tasks[2].id])
    await me.private(f"结果 任务={tasks[2].id} 类别=8 说明=「移交东城所处理」 签字=是")
    await me.be("approver")
    assert "已批准" in await me.private(f"批准 任务={tasks[2].id}")

    await eventually(lambda: query(engine, select(Batch.status).where(Batch.id == batch_id)) == ["completed"])
    with Session(engine) as session:
        audit.verify(session)
    statuses = query(engine, select(Result.status).order_by(Result.id))
    assert statuses == ["approved", "approved", "returned", "approved"]
