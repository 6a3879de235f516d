"""What the two WeCom load benches (webhook_bench, load_bench) share: signed, encrypted
self-built app callbacks (PROTOCOLS.md A.2–A.5), a stub WeCom API where the bot's answers
go, a bare aiohttp handler as the floor, the bot's configuration, the driving of load
generators in processes of their own over one measured window, and the wait until the bot
has processed what it acknowledged."""

from __future__ import annotations

import hashlib
import json
import math
import queue
import secrets
import string
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness import by_status, cpu_seconds, cpu_since, postgres_cpu, quantile, say, stop_all

from bot.callback_crypto import MsgCrypt
from bot.terminal import progress
from storage.sealing import new_key

DEADLINE = 5.0  # seconds WeCom waits for an answer before it drops the connection and retries
CORP_ID = "wwbenchcorp"
AGENT_ID = 1000002
TOKEN = "benchtoken"
ADMIN = "benchuser"
STRANGER = "benchstranger"
CALLBACK = "/wecom/callback"


# --- The bot's configuration ---------------------------------------------------------------------------------


def new_aes_key() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(43))


def admins_of(users: int) -> list[str]:
    """The administrators the admin messages come from."""
    return [ADMIN] if users == 1 else [f"{ADMIN}{n:03d}" for n in range(users)]


def bot_settings(db_url: str, aes_key: str, admins: list[str], stub_url: str) -> dict[str, str]:
    """The bot on ``db_url``, a WeCom app answering at the stub, the administrators, a Fernet key."""
    return {
        "SHUANGSUI__DATABASE__URL": db_url, "SHUANGSUI__SERVER__HOST": "127.0.0.1",
        "SHUANGSUI__WECOM__CORP_ID": CORP_ID, "SHUANGSUI__WECOM__AGENT_ID": str(AGENT_ID),
        "SHUANGSUI__WECOM__SECRET": "bench-secret", "SHUANGSUI__WECOM__TOKEN": TOKEN,
        "SHUANGSUI__WECOM__ENCODING_AES_KEY": aes_key, "SHUANGSUI__WECOM__API_BASE": stub_url,
        "SHUANGSUI__ROLES__ADMINS": "[" + ",".join(f'"{a}"' for a in admins) + "]",
        "SHUANGSUI__SECURITY__KEYS": f'["{new_key()}"]',
    }


# --- The servers beside the bot (each in its own process) ----------------------------------------------------


def digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def run_stub_api(port: int, record: bool = False, latency: float = 0.0) -> None:
    """WeCom's API as far as the bot's answers need it: a token, and every send accepted;
    ``record``: each call also counted by what it sends to whom (``GET /calls``), so that a
    message sent twice shows; ``latency``: seconds each send takes to be answered."""
    import asyncio

    from aiohttp import web

    counts: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    arrivals: list[tuple[float, str, str]] = []  # (time.time(), recipient, call) of each call, as it arrived

    async def gettoken(request: web.Request) -> web.Response:
        counts["gettoken"] += 1
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": "t", "expires_in": 7200})

    async def send(request: web.Request) -> web.Response:
        arrived = time.time()
        if latency:
            await asyncio.sleep(latency)
        if record:
            body = await request.json()
            kind = body.get("msgtype", "")
            what = (digest(body["text"]["content"]) if kind == "text"
                    else body["template_card"]["task_id"] if kind == "template_card" else "")
            calls[f"send|{body.get('touser')}|{kind}|{what}"] += 1
            arrivals.append((arrived, str(body.get("touser")), "message/send"))
        else:
            await request.read()
        counts["message/send"] += 1
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": "m"})

    async def update(request: web.Request) -> web.Response:
        body = await request.json()
        counts["update_template_card"] += 1
        calls[f"update|{','.join(body.get('userids', []))}|{body.get('response_code')}"] += 1
        if record:
            arrivals.append((time.time(), ",".join(body.get("userids", [])), "update_template_card"))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(dict(counts))

    async def recorded(request: web.Request) -> web.Response:
        return web.json_response(dict(calls))

    async def arrived(request: web.Request) -> web.Response:
        return web.json_response(arrivals)

    app = web.Application()
    app.router.add_get("/cgi-bin/gettoken", gettoken)
    app.router.add_post("/cgi-bin/message/send", send)
    app.router.add_post("/cgi-bin/message/update_template_card", update)
    app.router.add_get("/healthz", stats)
    app.router.add_get("/calls", recorded)
    app.router.add_get("/arrivals", arrived)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def run_recording_stub(port: int, latency: float = 0.0) -> None:
    run_stub_api(port, record=True, latency=latency)


def stub_counts(url: str) -> dict[str, int]:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return {}


def stub_calls(url: str) -> Counter[str]:
    with urllib.request.urlopen(url + "/calls", timeout=10) as response:
        return Counter(json.loads(response.read()))


def stub_arrivals(url: str) -> list[tuple[float, str, str]]:
    """When each call reached a recording stub (``time.time()``), to whom, and which API, in order."""
    with urllib.request.urlopen(url + "/arrivals", timeout=30) as response:
        return [(at, to, call) for at, to, call in json.loads(response.read())]


def run_bare(port: int, loop: str = "asyncio") -> None:
    """The floor: an aiohttp handler that reads the callback and answers an empty 200 — on
    aiohttp's own asyncio loop, or on the loop the bot runs on (uvloop where installed)."""
    import asyncio

    from aiohttp import web

    async def callback(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    from bot.app import event_loop

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post(CALLBACK, callback)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None,
                loop=event_loop() if loop == "bot" else asyncio.new_event_loop())


# --- The callbacks ---------------------------------------------------------------------------------------------


def is_stranger(index: int, share: float) -> bool:
    """Whether the index-th message comes from the user without a role (evenly spread)."""
    return math.floor((index + 1) * share) > math.floor(index * share)


def sender_of(index: int, share: float, admins: list[str]) -> str:
    return STRANGER if is_stranger(index, share) else admins[index % len(admins)]


def msg_id_base(run_id: int, proc: int) -> int:
    return 10**18 + run_id * 10**13 + proc * 10**10


def build_payload(crypt: MsgCrypt, msg_id: int, sender: str, content: str = "帮助") -> tuple[str, bytes]:
    """The query string and body of one signed, encrypted text-message callback (A.2–A.5)."""
    now = str(int(time.time()))
    inner = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[{sender}]]></FromUserName>"
             f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>"
             f"<MsgId>{msg_id}</MsgId><AgentID>{AGENT_ID}</AgentID></xml>")
    return seal(crypt, inner, now)


def seal(crypt: MsgCrypt, inner: str, now: str) -> tuple[str, bytes]:
    """A callback's plaintext XML encrypted and signed: the query string and the body WeCom posts (A.2–A.5)."""
    encrypted = crypt.encrypt(inner.encode())
    nonce = secrets.token_hex(8)
    signature = crypt.signature(now, nonce, encrypted)
    body = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<AgentID><![CDATA[{AGENT_ID}]]></AgentID></xml>")
    return f"?msg_signature={signature}&timestamp={now}&nonce={nonce}", body.encode()


# --- One timed run ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    target: str
    round: int
    seconds: float
    warmup: float
    latencies: list[float] = field(default_factory=list)  # sorted, seconds
    statuses: Counter = field(default_factory=Counter)
    acked: set = field(default_factory=set)
    extra: int = 0
    prebuilt: int = 0
    server_cpu: float = math.nan
    load_cpu: float = math.nan
    started: float = 0.0  # time.time() when the clients started (warm-up included)
    drain: dict = field(default_factory=dict)

    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds

    @property
    def not_ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != "200")

    @property
    def late(self) -> int:
        return sum(1 for latency in self.latencies if latency > DEADLINE)

    def quantile(self, q: float) -> float:
        return quantile(self.latencies, q)


def client_shares(clients: int, procs: int) -> list[int]:
    """``clients`` spread over ``procs`` load-generator processes."""
    return [clients // procs + (1 if p < clients % procs else 0) for p in range(procs)]


@dataclass
class Window:
    """What driving the load generators measured: when the clients started, the CPU the
    servers, the load generators and (if asked) the local PostgreSQL used in the measured
    window, and what each load process reported at its end."""

    started: float = 0.0
    server_cpu: float = math.nan
    load_cpu: float = math.nan
    db_cpu: float = math.nan
    outcomes: list[dict] = field(default_factory=list)


def drive(ctx, generate: Callable, loads: list[Any], server_pids: list[int], *, label: str, prebuilt: int,
          clients: str, warmup: float, seconds: float, done_timeout: float, db_cpu: bool = False) -> Window:
    """One load-generator process per load (``generate(load, go, start, results)``): each builds
    its callbacks and says ``ready``; all start together a moment later, and after ``warmup``
    the measured window of ``seconds`` opens; each says ``done`` with what it measured."""
    go, start, results = ctx.Event(), ctx.Value("d", 0.0), ctx.Queue()
    procs = [ctx.Process(target=generate, name=f"load-{label}-{n}", daemon=True, args=(load, go, start, results))
             for n, load in enumerate(loads)]
    window = Window()
    try:
        for proc in procs:
            proc.start()
        say(f"{label}: {len(procs)} load processes building {prebuilt:,} callbacks each …")
        for _ in procs:
            collect(results, procs, "ready")
        window.started = time.time() + 0.3
        start.value = window.started
        go.set()
        say(f"{label}: {clients}, {warmup:g} s warm-up, {seconds:g} s measured …")
        pids = [proc.pid for proc in procs]
        time.sleep(max(0.0, window.started + warmup - time.time()))
        server0, load0 = sum(cpu_seconds(pid) for pid in server_pids), sum(cpu_seconds(pid) for pid in pids)
        db0 = postgres_cpu() if db_cpu else {}
        time.sleep(max(0.0, window.started + warmup + seconds - time.time()))
        window.server_cpu = sum(cpu_seconds(pid) for pid in server_pids) - server0
        window.load_cpu = sum(cpu_seconds(pid) for pid in pids) - load0
        if db_cpu:
            window.db_cpu = cpu_since(db0, postgres_cpu())
        window.outcomes = [collect(results, procs, "done", timeout=done_timeout) for _ in procs]
        for proc in procs:
            proc.join(timeout=10)
    finally:
        stop_all(procs)
    return window


def collect(results, procs, kind: str, timeout: float = 600):
    """The next report of a load process, which must be ``kind``; fails if one of them died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got, proc, payload = results.get(timeout=1)
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                raise RuntimeError("a load-generator process failed") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"load generators did not report {kind!r} in time") from None
            continue
        if got != kind:
            raise RuntimeError(f"load generator {proc} said {got!r}, expected {kind!r}")
        return payload


# --- After the load --------------------------------------------------------------------------------------------


def wait_processed(engine, run: Run, timeout: float) -> dict:
    """Until no delivery is pending or being processed; how long that took after the load."""
    load_end = run.started + run.warmup + run.seconds
    stored_total = sum(by_status(engine, "inbound_deliveries").values())
    bar = progress(range(stored_total), total=stored_total, desc="processing")
    shown = 0
    try:
        while True:
            counts = by_status(engine, "inbound_deliveries")
            waiting = counts["pending"] + counts["processing"]
            finished = sum(counts.values()) - waiting
            bar.update(finished - shown)
            shown = finished
            if not waiting or time.time() - load_end > timeout:
                break
            time.sleep(0.2)
    finally:
        bar.close()
    return {"counts": counts, "drained_after": time.time() - load_end, "complete": not waiting}
