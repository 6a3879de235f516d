"""一公开 (SPEC §7, DRAW.md §7): the public pages over HTTP, what they must never show,
the draw re-checked with the downloaded verifier, the static export's links, the results
feed, and the ``public`` commands. The browser walk is in tests/browser/test_public_browser.py."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from openpyxl import load_workbook
from sqlalchemy import event
from sqlmodel import Session, select

from bot.app import create_app
from bot.batches.export import record
from bot.batches.results import approve
from bot.chat.identity import identify
from bot.cli import main
from bot.public import cache, routes
from bot.public.disclosure import object_page
from bot.public.export import NotEmpty, export_site
from bot.public.feeds import COLUMNS
from bot.public.site import Site
from bot.roles import Actor
from storage.db import transaction
from storage.models import Assignment, Batch, Conflict, InspectionObject, Inspector, Result, Task
from storage.models.directory import page_key
from tests.support.batch_district import seed_district
from tests.support.public_district import RECUSAL_REASON, RETURN_REASON, UNPUBLISHED_NOTE, disclose
from tests.support.results_district import LATER_NOW, SETTINGS


@pytest.fixture
def disclosed(engine, tmp_path):
    seed_district(engine, tmp_path)
    return disclose(engine, tmp_path)


@pytest.fixture
async def client(aiohttp_client, engine, disclosed):
    return await aiohttp_client(create_app(SETTINGS, engine, workers=False))


async def text(client, path: str, status: int = 200) -> str:
    response = await client.get(path)
    assert response.status == status, path
    return await response.text()


async def test_every_page_kind_over_http(client, engine, disclosed):
    drawn, waiting = disclosed.drawn, disclosed.published_only
    index = await text(client, "/public/index.html")
    assert drawn in index and waiting in index and disclosed.draft not in index
    assert (await client.get("/public/", allow_redirects=False)).headers["Location"] == "/public/index.html"
    assert "《企业信息公示暂行条例》第十四条" in await text(client, "/public/items.html")
    plans = await text(client, "/public/plans.html")
    assert "上级部署提高抽查比例" in plans and "10% → 12.5%" in plans
    assert "细则第十一条" in plans and "第十条" not in plans  # art. 11 is the plans article
    plan = await text(client, f"/public/batches/{waiting}.html")
    with Session(engine) as session:
        batch = session.get(Batch, waiting)
        assert batch.commitment in plan and "2026年12月1日上证指数收盘价" in plan and "尚未抽取" in plan
        assert batch.secret is None  # not revealed before the draw …
    assert "draw.html" not in plan
    await text(client, f"/public/batches/{waiting}/draw.html", 404)  # … and no draw record either
    await text(client, f"/public/batches/{disclosed.draft}.html", 404)  # a draft is not public
    draw_page = await text(client, f"/public/batches/{drawn}/draw.html")
    with Session(engine) as session:
        batch = session.get(Batch, drawn)
        assert batch.secret in draw_page and batch.seed in draw_page
        expected = record(session, batch)
    assert "python3 verifier.py" in draw_page and "shuangsui verify" in draw_page
    assert json.loads(await text(client, f"/public/batches/{drawn}/record.json")) == expected
    pool = await text(client, f"/public/batches/{drawn}/pool-main.txt")
    assert len(pool.splitlines()) == expected["strata"][0]["pool_size"]
    results = await text(client, f"/public/batches/{drawn}/results.html")
    assert "未发现问题" in results and "发现问题已责令改正" in results and "其余 2 项" in results
    with Session(engine) as session:
        first = session.get(Task, disclosed.published_tasks[0])
    credit = await text(client, f"/public/objects/{object_page(first.object_id)}.html")
    assert "未发现问题" in credit and drawn in credit
    assert first.object_id in await text(client, "/public/objects.html")
    await text(client, "/public/objects/no-such-object.html", 404)
    missing = await client.get("/public/../app.py")
    assert missing.status == 404


async def test_the_roster_digest_is_public_from_publication_and_the_roster_is_not(client, engine, disclosed):
    """DRAW.md §1.3, §8; SPEC §6–7: published with the commitment, carried by record.json."""
    with Session(engine) as session:
        waiting, drawn = session.get(Batch, disclosed.published_only), session.get(Batch, disclosed.drawn)
    assert waiting.roster_digest and drawn.roster_digest
    plan = await text(client, f"/public/batches/{waiting.id}.html")
    assert "名录摘要" in plan and waiting.roster_digest in plan and waiting.secret is None
    assert drawn.roster_digest in await text(client, f"/public/batches/{drawn.id}.html")
    assert drawn.roster_digest in await text(client, f"/public/batches/{drawn.id}/draw.html")
    record_json = json.loads(await text(client, f"/public/batches/{drawn.id}/record.json"))
    assert record_json["roster_digest"] == drawn.roster_digest
    await text(client, f"/public/batches/{drawn.id}/roster.txt", 404)  # inspectors and conflicts stay internal


async def test_search_by_name_or_code(client, disclosed):
    found = await text(client, "/public/search.html?q=对象1")
    assert "对象10" in found and "对象1" in found
    assert "911506020000000007" in await text(client, "/public/search.html?q=0000000007")
    assert "没有找到" in await text(client, "/public/search.html?q=%25_%25")  # LIKE wildcards are literal
    assert "没有找到" not in await text(client, "/public/search.html?q=")


async def test_downloads_are_files_and_pages_forbid_scripts(client, disclosed):
    response = await client.get("/public/results.csv")
    assert response.headers["Content-Disposition"].startswith("attachment")
    page = await client.get("/public/index.html")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def forbidden(engine) -> list[str]:
    """What no public page or file may contain: inspectors (names, ids, certificates, platform
    accounts), conflict declarations, recusal and return reasons, unpublished remarks."""
    with Session(engine) as session:
        words = [RECUSAL_REASON, RETURN_REASON, UNPUBLISHED_NOTE]
        for inspector in session.exec(select(Inspector)).all():
            words += [inspector.name, inspector.wecom_userid, inspector.dingtalk_userid,
                      f">{inspector.id}<", f'"{inspector.id}"', inspector.certificate_no + "<"]
        words += [c.reason for c in session.exec(select(Conflict)).all() if c.reason]
        words += [a.recusal_reason for a in session.exec(select(Assignment)).all() if a.recusal_reason]
    return [w for w in words if w]


async def test_nothing_private_is_disclosed(client, engine, disclosed, tmp_path):
    bad = forbidden(engine)
    assert RECUSAL_REASON in bad and "检查员1" in bad
    with Session(engine) as session:
        files = list(Site(session, SETTINGS).everything())
    served = [await text(client, "/public/search.html?q=对象"), await text(client, "/public/search.html?q=检查员")]
    export_site(engine, SETTINGS, tmp_path / "site")
    exported = [p.read_bytes() for p in (tmp_path / "site").rglob("*") if p.is_file()]
    texts = [f.body.decode("utf-8", "ignore") for f in files] + served + [b.decode("utf-8", "ignore") for b in exported]
    texts.append(" ".join(str(c.value) for row in load_workbook(io.BytesIO(
        next(f.body for f in files if f.path == "results.xlsx"))).active.iter_rows() for c in row))
    for content in texts:
        for word in bad:
            assert word not in content
    with Session(engine) as session:  # the pending result's object shows no result at all
        pending = session.get(Task, disclosed.pending_task)
        page = Site(session, SETTINGS).get(f"objects/{object_page(pending.object_id)}.html").body.decode()
    assert "暂无已公示的抽查检查结果" in page


async def test_the_downloaded_verifier_checks_the_downloaded_record(client, disclosed, tmp_path):
    folder = tmp_path / "核验"
    folder.mkdir()
    for name in ("record.json", "pool-main.txt"):
        (folder / name).write_bytes(await (await client.get(f"/public/batches/{disclosed.drawn}/{name}")).read())
    verifier = tmp_path / "verifier.py"
    verifier.write_bytes(await (await client.get("/public/verifier.py")).read())

    def run() -> subprocess.CompletedProcess:
        # -I: isolated, nothing of ours on the path; the verifier needs only the standard library.
        return subprocess.run([sys.executable, "-I", str(verifier), str(folder)], capture_output=True, text=True,
                              cwd=tmp_path, timeout=60)

    ok = run()
    assert ok.returncode == 0 and ok.stdout.startswith("SSR-1 OK"), ok.stdout + ok.stderr
    pool = (folder / "pool-main.txt").read_text(encoding="utf-8")
    first = pool.splitlines()[0]
    (folder / "pool-main.txt").write_text(pool.replace(first, first.rsplit("|", 1)[0] + "|9", 1), encoding="utf-8")
    tampered = run()
    assert tampered.returncode == 1 and "MISMATCH" in tampered.stdout and "pool" in tampered.stdout.lower()
    (folder / "pool-main.txt").write_text(pool, encoding="utf-8")
    data = json.loads((folder / "record.json").read_text(encoding="utf-8"))
    data["strata"][0]["selected"][0]["id"] = data["strata"][0]["selected"][-1]["id"]
    (folder / "record.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    tampered = run()
    assert tampered.returncode == 1 and "MISMATCH" in tampered.stdout and "select" in tampered.stdout.lower()


class Links(HTMLParser):
    """Hrefs and ids of a page, and whether its elements nest properly."""

    VOID = {"meta", "link", "br", "img", "input", "hr", "wbr", "source", "col", "area", "base"}
    OPTIONAL_END = {"li", "p", "dt", "dd", "tr", "td", "th", "option", "thead", "tbody"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs, self.ids, self.stack, self.problems = [], set(), [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("href", "action", "src"):
            if attrs.get(name):
                self.hrefs.append(attrs[name])
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        while self.stack and self.stack[-1] != tag and self.stack[-1] in self.OPTIONAL_END:
            self.stack.pop()
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def test_static_export_has_no_broken_links(engine, disclosed, tmp_path):
    out = tmp_path / "site"
    written = export_site(engine, SETTINGS, out)
    assert set(written) == {"html", "json", "txt", "csv", "xlsx", "py"}
    pages = {p: Links() for p in out.rglob("*.html")}
    for path, parser in pages.items():
        parser.feed(path.read_text(encoding="utf-8"))
        parser.close()
        assert not parser.problems and parser.stack == [], (path, parser.problems, parser.stack)
    checked = 0
    for path, parser in pages.items():
        for href in parser.hrefs:
            parts = urlsplit(href)
            assert not parts.scheme and not parts.netloc and not href.startswith("/"), (path, href)  # offline
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            assert target.is_file(), f"{path.relative_to(out)} links to missing {href}"
            if parts.fragment:
                assert parts.fragment in pages[target].ids, (path, href)
            checked += 1
    assert checked > 50
    assert not (out / "search.html").exists()  # a static site cannot search: objects.html instead
    with pytest.raises(NotEmpty):
        export_site(engine, SETTINGS, out)


def test_results_feed_layout(engine, disclosed):
    with Session(engine) as session:
        site = Site(session, SETTINGS)
        rows = list(csv.reader(io.StringIO(site.get("results.csv").body.decode("utf-8-sig"))))
        sheet = load_workbook(io.BytesIO(site.get("results.xlsx").body)).active
        tasks = [session.get(Task, t) for t in disclosed.published_tasks]
    assert tuple(rows[0]) == COLUMNS
    assert [r[0] for r in rows[1:]] == [t.object_id for t in tasks]
    assert [r[5:7] for r in rows[1:]] == [["1", "未发现问题"], ["5", "发现问题已责令改正"]]
    assert all(r[2] == disclosed.drawn and r[4] == "A01" and r[7] and r[8] and r[9] for r in rows[1:])
    assert [[str(c.value) for c in row] for row in sheet.iter_rows()] == rows


@pytest.fixture
def cli(engine, db_url, sealing_key, disclosed, monkeypatch, capsys):
    monkeypatch.setenv("SHUANGSUI__DATABASE__URL", db_url)
    monkeypatch.setenv("SHUANGSUI__SECURITY__KEYS", f'["{sealing_key}"]')  # the keys the database is sealed with

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_public_commands(cli, tmp_path):
    code, out, err = cli("public", "export", "--out", tmp_path / "site")
    assert code == 0 and out == "" and "index.html" in err and "个文件" in err
    assert (tmp_path / "site" / "index.html").is_file()
    code, _, err = cli("public", "export", "--out", tmp_path / "site")
    assert code == 1 and "空文件夹" in err
    code, out, err = cli("public", "results", "--out", tmp_path / "结果.csv")
    assert code == 0 and out == "" and "2 条" in err
    assert (tmp_path / "结果.csv").read_bytes().startswith(b"\xef\xbb\xbfcredit_code,")
    assert cli("public", "results", "--out", tmp_path / "结果.xlsx")[0] == 0
    code, _, err = cli("public", "results", "--out", tmp_path / "结果.pdf")
    assert code == 1 and ".csv" in err


def test_object_page_names_are_safe_file_names():
    assert object_page("91150602MA0N000001") == "91150602MA0N000001"
    assert object_page("L-产品-0007") == "L-产品-0007"
    for unsafe in ("a/b", "..", "x y", "C:\\x", "a" * 200, ""):
        name = object_page(unsafe)
        assert name.startswith("o-") and len(name) == 18 and Path(name).name == name


async def test_the_index_shows_the_audit_anchor_of_the_draw(client, engine, disclosed, tmp_path):
    """Item 10: the head is public at every draw and the export writes it; the kept anchor
    still matches the chain after later entries."""
    from storage import audit
    from storage.models import AuditEntry

    with Session(engine) as session:
        anchor = audit.latest_anchor(session)
        drawn = session.exec(select(AuditEntry).where(AuditEntry.action == "batch.drawn")).one()
    assert anchor is not None and anchor.reason == "draw" and (anchor.seq, anchor.hash) == (drawn.seq, drawn.hash)
    index = await text(client, "/public/index.html")
    assert anchor.hash in index and f"<code>{anchor.seq}</code>" in index
    assert json.loads(await text(client, "/public/anchor.json"))["hash"] == anchor.hash
    export_site(engine, SETTINGS, tmp_path / "site")
    assert (tmp_path / "site" / "anchor.txt").read_text().startswith(f"{anchor.seq} {anchor.hash} ")
    assert anchor.hash in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    with Session(engine) as session:
        assert audit.head(session)[0] > anchor.seq  # approvals came after the draw
        assert audit.check_anchor(session, anchor.seq, anchor.hash) and audit.verify(session).ok


# ----- issue 17 item 13: /public is not cheap to overload ----------------------------------------------


class Statements:
    """The SQL statements an engine runs while counting."""

    def __init__(self, engine) -> None:
        self.engine, self.seen = engine, []

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._note)
        return self.seen

    def __exit__(self, *_):
        event.remove(self.engine, "before_cursor_execute", self._note)

    def _note(self, conn, cursor, statement, *_):
        self.seen.append(statement)


async def test_an_object_page_is_found_by_its_stored_key(client, engine, disclosed, monkeypatch):
    with Session(engine) as session:  # an id unsafe as a file name: its page is o-<digest>
        unit = session.exec(select(InspectionObject)).first().unit_id
        session.add(InspectionObject(id="C/2026 0001", name="斜杠对象", kind="企业", unit_id=unit))
        session.commit()
        assert session.get(InspectionObject, "C/2026 0001").page_key == object_page("C/2026 0001")
    calls = []

    def counting(object_id: str) -> str:
        calls.append(object_id)
        return page_key(object_id)

    monkeypatch.setattr("bot.public.site.object_page", counting)
    monkeypatch.setattr("bot.public.disclosure.page_key", counting)
    page = await text(client, f"/public/objects/{object_page('C/2026 0001')}.html")
    assert "斜杠对象" in page
    assert len(calls) < 5  # not a digest of every object's id per request
    await text(client, "/public/objects/o-0000000000000000.html", 404)


async def test_a_cached_feed_is_served_without_queries_until_a_publication(client, engine, disclosed):
    first = await text(client, "/public/results.csv")
    await text(client, "/public/index.html")
    with Statements(engine) as seen:
        assert await text(client, "/public/results.csv") == first
        assert await text(client, "/public/index.html")
        assert await text(client, "/public/index.html")
    assert len(seen) <= 1
    with transaction(engine) as session:  # a publication: the submitted result is approved
        result = session.exec(select(Result).where(Result.task_id == disclosed.pending_task)).one()
        approve(session, identify(session, SETTINGS, Actor("wecom", "admin1")), result.id, LATER_NOW)
    cache.CHECK_SECONDS, saved = 0.0, cache.CHECK_SECONDS
    try:
        with Statements(engine) as seen:
            refreshed = await text(client, "/public/results.csv")
            again = await text(client, "/public/results.csv")
    finally:
        cache.CHECK_SECONDS = saved
    assert len(refreshed.splitlines()) == len(first.splitlines()) + 1 and again == refreshed
    assert len(seen) > 2  # rebuilt once …
    with Statements(engine) as seen:
        await text(client, "/public/results.csv")
    assert len(seen) <= 1  # … then kept again


async def test_search_reads_no_objects_per_request(client, engine, disclosed):
    assert "对象10" in await text(client, "/public/search.html?q=对象1")
    with Statements(engine) as seen:
        assert "911506020000000007" in await text(client, "/public/search.html?q=0000000007")
        assert "对象2" in await text(client, "/public/search.html?q=象2")
    assert not [s for s in seen if "FROM objects" in s]


async def test_a_saturated_public_executor_answers_503(aiohttp_client, engine, disclosed, monkeypatch):
    monkeypatch.setattr(routes, "WORKERS", 1)
    monkeypatch.setattr(routes, "QUEUE", 1)
    release, started = threading.Event(), threading.Event()
    render = cache.PublicCache.render

    def slow(self, path, query):
        started.set()
        release.wait(10)
        return render(self, path, query)

    monkeypatch.setattr(cache.PublicCache, "render", slow)
    client = await aiohttp_client(create_app(SETTINGS, engine, workers=False))
    waiting = [asyncio.ensure_future(client.get(f"/public/{p}")) for p in ("index.html", "items.html")]
    assert await asyncio.to_thread(started.wait, 10)
    await asyncio.sleep(0.1)
    busy = await client.get("/public/plans.html")
    assert busy.status == 503 and busy.headers["Retry-After"] == "5" and "稍后" in await busy.text()
    release.set()
    assert [r.status for r in await asyncio.gather(*waiting)] == [200, 200]
    assert (await client.get("/public/plans.html")).status == 200  # room again


async def test_when_the_check_is_due_one_request_makes_it_and_the_others_are_served_what_is_kept(
        aiohttp_client, engine, disclosed, monkeypatch):
    """A busy second must not send every request of that moment to the public executor (beyond
    its queue they would be answered 503): one re-reads the generation, the rest get the kept page."""
    monkeypatch.setattr(routes, "WORKERS", 1)
    monkeypatch.setattr(routes, "QUEUE", 1)
    client = await aiohttp_client(create_app(SETTINGS, engine, workers=False))
    kept = await text(client, "/public/index.html")
    release, renders = threading.Event(), []
    render = cache.PublicCache.render

    def slow(self, path, query):
        renders.append(path)
        release.wait(10)
        return render(self, path, query)

    monkeypatch.setattr(cache.PublicCache, "render", slow)
    monkeypatch.setattr(cache, "CHECK_SECONDS", 0.0)  # the check is due at once
    first = asyncio.ensure_future(client.get("/public/index.html"))
    while not renders:
        await asyncio.sleep(0.01)
    answers = await asyncio.gather(*(client.get("/public/index.html") for _ in range(30)))
    assert [a.status for a in answers] == [200] * 30 and {await a.text() for a in answers} == {kept}
    assert renders == ["index.html"]  # only the first went to the executor
    release.set()
    assert (await first).status == 200
