"""The public disclosure site (一公开, SPEC §7) in headless Chromium: every page kind of a
drawn and partly published district, reached only by clicking links from the index —
the batches, the item list, the annual plans with their adjustment, a plan before and
after its draw, the draw record with downloads that really verify, the published results,
credit records, the object list and the search; a missing page is the Chinese 404. Each
page is checked for its language, one h1, header cells, labelled inputs, no script, and
at phone width no sideways scrolling. The static export is walked offline from
``file://`` the same way.

Needs Debian's ``chromium`` and the ``playwright`` package (no browser download);
skipped with a message where either is missing. ``.ci/run`` installs Chromium.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from sqlmodel import Session, select

from bot.app import create_app
from bot.public.export import export_site
from bot.rules import ssr1
from storage.models import Batch, InspectionObject, Stratum, Task
from tests.support.batch_district import ITEMS, seed_district
from tests.support.public_district import RECUSAL_REASON, RETURN_REASON, UNPUBLISHED_NOTE, Disclosed, disclose
from tests.support.results_district import SETTINGS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt install chromium)")]

PHONE = {"width": 375, "height": 800}
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
#: Never on a public page: remarks of an unapproved result, a return reason, a recusal
#: reason, inspectors' names and platform accounts.
NOT_PUBLIC = (UNPUBLISHED_NOTE, RETURN_REASON, RECUSAL_REASON)
PRIVATE = re.compile(r"检查员\d|wx-I\d|dt-I\d")

#: What every public page must be (run in the page; CDP evaluation is not bound by its CSP).
SHAPE = """() => ({
  lang: document.documentElement.lang,
  title: document.title,
  h1: document.querySelectorAll("h1").length,
  tablesWithoutTh: [...document.querySelectorAll("table")].filter(t => !t.querySelector("th")).length,
  unlabelled: [...document.querySelectorAll("input, select, textarea")]
    .filter(e => e.type !== "hidden" && e.labels.length === 0 && !e.getAttribute("aria-label"))
    .map(e => e.outerHTML),
  scripts: document.querySelectorAll("script").length,
  handlers: [...document.querySelectorAll("*")].flatMap(e => [...e.attributes])
    .filter(a => a.name.startsWith("on") || /^\\s*javascript:/i.test(a.value)).map(a => a.name),
  links: [...document.querySelectorAll("a[href]")].map(a => a.href),
})"""
NOBODY = '不存在的<b>名称</b><script>x</script>"'
OVERFLOW = "() => [document.body.scrollWidth, window.innerWidth]"


@pytest.fixture
def district(engine, tmp_path) -> Disclosed:
    seed_district(engine, tmp_path)
    return disclose(engine, tmp_path)


@pytest.fixture
async def server(district, engine, aiohttp_server):
    return await aiohttp_server(create_app(SETTINGS, engine, workers=False, ticker=False))


@pytest.fixture
async def browser():
    async with playwright.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        await browser.close()


class Reader:
    """Someone reading the public site, by clicking; every page they see is checked."""

    def __init__(self, page) -> None:
        self.page = page
        self.seen: list[str] = []  # the URLs of the pages read
        self.links: set[str] = set()  # every link on them

    async def check(self) -> str:
        """The page's text, after checking its shape and that nothing private is on it."""
        shape = await self.page.evaluate(SHAPE)
        where = self.page.url
        assert shape["lang"] == "zh-CN" and shape["title"].endswith("“双随机、一公开”"), where
        assert shape["h1"] == 1, where
        assert shape["tablesWithoutTh"] == 0, where
        assert shape["unlabelled"] == [], where
        assert shape["scripts"] == 0 and shape["handlers"] == [], where
        html = await self.page.content()
        assert not [s for s in NOT_PUBLIC if s in html] and not PRIVATE.search(html), where
        self.seen.append(where)
        self.links.update(link.split("#", 1)[0] for link in shape["links"])
        return await self.page.locator("main").inner_text()

    async def click(self, link, url: str) -> str:
        """Follow ``link`` (a locator of exactly one link) to ``url`` (a glob); the new page's text."""
        await link.click()
        await self.page.wait_for_url(url)
        return await self.check()

    async def nav(self, name: str, url: str) -> str:
        return await self.click(self.page.get_by_role("navigation", name="公示栏目").get_by_role("link", name=name),
                                url)

    def row(self, text: str):
        return self.page.locator("tbody tr").filter(has_text=text)

    async def cells(self) -> list[list[str]]:
        """The rows of the page's tables (body rows only), cell texts stripped."""
        return [[c.strip() for c in await row.locator("td").all_inner_texts()]
                for row in await self.page.locator("tbody tr").all()]

    async def download(self, name: str, folder: Path) -> Path:
        async with self.page.expect_download() as started:
            await self.page.get_by_role("link", name=name, exact=True).click()
        download = await started.value
        assert download.suggested_filename == name
        target = folder / name
        await download.save_as(target)
        return target


def facts(engine, info: Disclosed) -> dict:
    """What the pages should show, read from the database."""
    with Session(engine) as session:
        batches = {b.id: b for b in session.exec(select(Batch)).all()}
        strata = {s.batch_id: s for s in session.exec(select(Stratum)).all()}
        names = {o.id: o.name for o in session.exec(select(InspectionObject)).all()}
        tasks = session.exec(select(Task).where(Task.batch_id == info.drawn).order_by(Task.position)).all()
        by_id = {t.id: t.object_id for t in tasks}
        return {"batches": batches, "strata": strata, "names": names, "selected": [t.object_id for t in tasks],
                "published": [by_id[t] for t in info.published_tasks]}


def hashes(text: str) -> list[str]:
    return HEX64.findall(text)


async def test_every_page_kind_reached_by_clicking_from_the_index(server, browser, engine, district, tmp_path):
    info, known = district, facts(engine, district)
    drawn, waiting = known["batches"][info.drawn], known["batches"][info.published_only]
    me = Reader(await browser.new_page())
    response = await me.page.goto(str(server.make_url("/public/")))
    assert response.ok and me.page.url.endswith("/public/index.html")
    assert "default-src 'none'" in response.headers["content-security-policy"]

    # the index: the drawn and the published batch with their states and links; never the draft
    text = await me.check()
    assert "共 2 个批次" in text and info.draft not in text and "草稿批次" not in text
    assert await me.row(info.drawn).locator("td").nth(2).inner_text() == "检查中"
    assert await me.row(info.published_only).locator("td").nth(2).inner_text() == "方案已公示，待抽取"
    assert await me.row(info.drawn).get_by_role("link").all_inner_texts() == ["抽查方案", "抽取记录", "检查结果"]
    assert await me.row(info.published_only).get_by_role("link").all_inner_texts() == ["抽查方案"]
    assert await me.page.get_by_role("search").count() == 1

    # the item list, with the legal basis of each item
    text = await me.nav("抽查事项清单", "**/public/items.html")
    expected = [line.split(",") for line in ITEMS.splitlines()[1:]]
    assert [row[:3] for row in await me.cells()] == [[code, name, basis] for code, name, basis, *_ in expected]
    assert "共 3 项" in text

    # the annual plans, with the adjustment's date, reason and change
    text = await me.nav("年度抽查计划", "**/public/plans.html")
    assert "2026 年 · 企业公示信息年度抽查" in text and "12.5%" in text
    adjustment = await me.page.locator("section li").filter(has_text="上级部署提高抽查比例").inner_text()
    assert "2026-06-01" in adjustment and "抽查比例：10% → 12.5%" in adjustment

    # the plan of the batch not yet drawn: commitment, beacon, pool size and digest; no draw to see
    await me.nav("抽查批次", "**/public/index.html")
    text = await me.click(me.row(info.published_only).get_by_role("link", name="抽查方案"),
                          f"**/public/batches/{info.published_only}.html")
    stratum = known["strata"][info.published_only]
    assert await me.page.locator("h1").inner_text() == "抽查方案：第二批抽查"
    assert "尚未抽取" in text and "方案已公示，待抽取" in text
    assert f"承诺值：{waiting.commitment}" in text
    assert "抽取时还将使用 2026年12月1日上证指数收盘价 作为信标" in text
    assert [stratum.name, "全部在册对象", "A01", str(stratum.pool_size), str(stratum.k), stratum.pool_digest] in \
        await me.cells()
    assert waiting.roster_digest and "名录摘要" in text  # the roster frozen with the pools (DRAW §8)
    assert stratum.pool_size == 60 and hashes(text) == [stratum.pool_digest, waiting.commitment, waiting.roster_digest]
    assert await me.page.locator('a[href*="draw.html"], a[href*="results.html"], a[href$=".json"]').count() == 0

    # the drawn batch's plan, linked to its annual plan, then its draw record
    await me.nav("抽查批次", "**/public/index.html")
    text = await me.click(me.row(info.drawn).get_by_role("link", name="抽查方案"),
                          f"**/public/batches/{info.drawn}.html")
    stratum = known["strata"][info.drawn]
    assert "2026 年 · 企业公示信息年度抽查" in text and "交叉随机" in text and "本批次不使用公开信标" in text
    assert "尚未抽取" not in text and f"承诺值：{drawn.commitment}" in text
    assert [stratum.name, "全部在册对象", "A01", "60", "4", stratum.pool_digest] in await me.cells()
    text = await me.click(me.page.get_by_role("link", name="查看抽取记录和核验方法"),
                          f"**/public/batches/{info.drawn}/draw.html")
    assert await me.page.locator("h1").inner_text() == "抽取记录：食品安全专项抽查"
    commitment, secret, seed, roster, *scores = hashes(text)
    assert (commitment, secret, roster) == (drawn.commitment, drawn.secret, drawn.roster_digest)
    assert ssr1.commitment(secret) == commitment and seed == ssr1.seed(info.drawn, secret, "")
    rows = await me.cells()
    assert [row[2] for row in rows] == [i for i, _ in stratum.selected] == known["selected"]
    assert [row[1] for row in rows] == [known["names"][i] for i in known["selected"]]
    assert scores == [score for _, score in stratum.selected] == sorted(scores)
    for object_id in known["selected"]:
        link = me.page.locator("tbody").get_by_role("link", name=known["names"][object_id], exact=True)
        assert await link.get_attribute("href") == f"../../objects/{object_id}.html"
    verify = me.page.locator("ol").filter(has_text="verifier.py")
    assert await me.page.get_by_role("heading", name="自己核验这次抽取").count() == 1
    assert await verify.locator("pre").inner_text() == "python3 verifier.py 核验"

    # the downloads are the real files: the verifier, run on them, agrees
    folder = tmp_path / "核验"
    folder.mkdir()
    record = json.loads((await me.download("record.json", folder)).read_text("utf-8"))
    assert (record["batch_id"], record["seed"], record["secret"]) == (info.drawn, seed, secret)
    pool = await me.download("pool-main.txt", folder)
    assert len(pool.read_bytes().splitlines()) == 60
    assert hashlib.sha256(pool.read_bytes()).hexdigest() == stratum.pool_digest
    await me.download("verifier.py", tmp_path)
    run = subprocess.run([sys.executable, str(tmp_path / "verifier.py"), str(folder)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("SSR-1 OK"), run.stdout + run.stderr

    # the results: the two published ones only, and what is still to come
    text = await me.click(me.page.locator("dl").get_by_role("link", name="检查结果"),
                          f"**/public/batches/{info.drawn}/results.html")
    first, second = known["published"]
    assert "共 4 项检查任务，已公示结果 2 项，其余 2 项正在检查或审核中，结果经审核后公示" in text
    rows = await me.cells()
    assert [(row[0], row[1], row[2]) for row in rows] == [
        (known["names"][first], first, "1. 未发现问题"), (known["names"][second], second, "5. 发现问题已责令改正")]
    assert all(row[5] in ("东城所", "西城所") for row in rows)

    # a credit record, from the results
    text = await me.click(me.page.locator("tbody").get_by_role("link", name=known["names"][second], exact=True),
                          f"**/public/objects/{second}.html")
    assert await me.page.locator("h1").inner_text() == known["names"][second]
    assert second in text and "有限责任公司" in text
    assert [row[:2] for row in await me.cells()] == [["食品安全专项抽查", "5. 发现问题已责令改正"]]
    assert await me.page.locator("main li").get_by_role("link", name="食品安全专项抽查").get_attribute("href") == \
        f"../batches/{info.drawn}/draw.html"

    # the object list: the four drawn objects, by name
    text = await me.nav("检查对象与信用记录", "**/public/objects.html")
    assert "共 4 个检查对象" in text
    assert await me.cells() == sorted([[known["names"][i], i] for i in known["selected"]])

    # the search from the index: nothing found (and the text typed stays text), then part of a
    # name, and through to the object
    await me.nav("抽查批次", "**/public/index.html")
    await me.page.get_by_label("查找检查对象（名称或统一社会信用代码）").fill(NOBODY)
    text = await me.click(me.page.get_by_role("button", name="查询"), "**/public/search.html?q=*")
    assert f"没有找到名称或代码含“{NOBODY}”的检查对象" in text
    assert await me.page.get_by_label("名称或统一社会信用代码").input_value() == NOBODY
    name = known["names"][first]
    await me.page.get_by_label("名称或统一社会信用代码").fill(name[1:])
    await me.page.get_by_label("名称或统一社会信用代码").press("Enter")
    await me.page.wait_for_url(re.compile(r".*/public/search\.html\?q=%E8%B1%A1\d+$"))
    text = await me.check()
    assert await me.page.locator("h1").inner_text() == "查找检查对象"
    assert await me.page.get_by_label("名称或统一社会信用代码").input_value() == name[1:]
    assert f"“{name[1:]}”的查询结果" in text
    found = await me.page.locator("main li a").all_inner_texts()
    assert name in found and all(name[1:] in n for n in found)
    text = await me.click(me.page.locator("main li").get_by_role("link", name=name, exact=True),
                          f"**/public/objects/{first}.html")
    assert await me.page.locator("h1").inner_text() == name
    assert [row[:2] for row in await me.cells()] == [["食品安全专项抽查", "1. 未发现问题"]]

    # every link on every page read leads somewhere
    assert len(me.seen) == 15
    for link in sorted(me.links):
        assert link.startswith(str(server.make_url("/public/"))), link
        assert (await me.page.request.get(link)).status == 200, link


async def test_phone_width_and_the_missing_page(server, browser, district):
    info = district
    phone = await browser.new_page(viewport=PHONE)
    me = Reader(phone)
    await phone.goto(str(server.make_url("/public/index.html")))
    await me.check()
    for link, url in ((me.row(info.drawn).get_by_role("link", name="抽取记录"), "**/draw.html"),
                      (phone.locator("dl").get_by_role("link", name="检查结果"), "**/results.html"),
                      (phone.locator("tbody a").first, "**/objects/*.html"),
                      (phone.get_by_role("link", name="抽查事项清单"), "**/items.html"),
                      (phone.get_by_role("link", name="年度抽查计划"), "**/plans.html"),
                      (phone.get_by_role("link", name="检查对象与信用记录"), "**/objects.html")):
        width, inner = await phone.evaluate(OVERFLOW)
        assert width <= inner + 1, f"{phone.url} is {width}px wide on a {inner}px phone"
        await me.click(link, url)
    width, inner = await phone.evaluate(OVERFLOW)
    assert width <= inner + 1, f"{phone.url} is {width}px wide on a {inner}px phone"

    # the draft's plan, the undrawn batch's draw record, an unknown object: the Chinese 404
    page = await browser.new_page()
    me = Reader(page)
    for path in (f"/public/batches/{info.draft}.html", f"/public/batches/{info.published_only}/draw.html",
                 f"/public/batches/{info.draft}/record.json", "/public/objects/9115000000000000XX.html",
                 "/public/nothing.html"):
        response = await page.goto(str(server.make_url(path)))
        assert response.status == 404, path
        assert response.headers["content-type"].startswith("text/html"), path
        text = await me.check()
        assert await page.locator("h1").inner_text() == "没有这个页面", path
        assert "还没有公示" in text and info.draft not in text
    await me.click(page.get_by_role("link", name="公示首页"), "**/public/index.html")


async def test_the_static_export_offline(browser, engine, district, tmp_path):
    info, known = district, facts(engine, district)
    out = tmp_path / "site"
    export_site(engine, SETTINGS, out)
    assert not (out / "search.html").exists() and not (out / "batches" / f"{info.draft}.html").exists()
    me = Reader(await browser.new_page())
    await me.page.goto((out / "index.html").as_uri())

    # no search form offline; the object list stands in for it
    text = await me.check()
    assert await me.page.locator("form, input").count() == 0
    assert "共 2 个批次" in text and info.draft not in text
    assert await me.page.locator("main").get_by_role("link", name="检查对象与信用记录").get_attribute("href") == \
        "objects.html"

    # to the draw record, a credit record, and back to the draw by the links
    text = await me.click(me.row(info.drawn).get_by_role("link", name="抽取记录"),
                          f"**/batches/{info.drawn}/draw.html")
    assert known["batches"][info.drawn].seed in text
    name = known["names"][known["selected"][0]]
    text = await me.click(me.page.locator("tbody").get_by_role("link", name=name, exact=True),
                          f"**/objects/{known['selected'][0]}.html")
    assert await me.page.locator("h1").inner_text() == name
    await me.click(me.page.locator("main li").get_by_role("link", name="食品安全专项抽查"),
                   f"**/batches/{info.drawn}/draw.html")
    await me.click(me.page.locator("dl").get_by_role("link", name="检查结果"), f"**/batches/{info.drawn}/results.html")
    second = known["published"][1]
    text = await me.click(me.page.locator("tbody").get_by_role("link", name=known["names"][second], exact=True),
                          f"**/objects/{second}.html")
    assert [row[:2] for row in await me.cells()] == [["食品安全专项抽查", "5. 发现问题已责令改正"]]
    text = await me.nav("检查对象与信用记录", "**/objects.html")
    assert "共 4 个检查对象" in text and await me.page.locator("form, input").count() == 0

    # every exported page passes the checks, and every link on it is a file of the export
    for page in sorted(out.rglob("*.html")):
        await me.page.goto(page.as_uri())
        await me.check()
    for link in sorted(me.links):
        assert link.startswith("file://"), link
        target = Path(unquote(urlsplit(link).path))
        assert target.is_file() and out.resolve() in target.resolve().parents, link

    # the downloads of the draw record, where they lie, verify
    run = subprocess.run([sys.executable, str(out / "verifier.py"), str(out / "batches" / info.drawn)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("SSR-1 OK"), run.stdout + run.stderr
