"""`shuangsui demo`: upgrades, seeds the synthetic district once, serves and prints the URL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from sqlalchemy import func, select

from storage.db import make_engine
from storage.models import InspectionObject, Inspector, Unit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_demo(data, port):
    env = os.environ | {"SHUANGSUI__SERVER__PORT": str(port), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "demo", "--data", str(data), "--objects", "800"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def get_json(url: str, cookie: str = "") -> dict:
    deadline = time.monotonic() + 30
    while True:
        try:
            request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
            with urllib.request.urlopen(request, timeout=2) as response:
                return json.load(response)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_demo_seeds_once_and_serves(tmp_path):
    data = tmp_path / "demo"
    for run in range(2):
        port = free_port()
        demo = start_demo(data, port)
        try:
            told = []  # on standard error: the console's address with this start's token
            while "token=" not in (line := demo.stderr.readline()):
                assert line, "the demo ended without printing the console's address"
                told.append(line)
            url = line.strip().split("：", 1)[1]
            base, token = url.split("console/?token=")
            assert base == f"http://127.0.0.1:{port}/" and len(token) >= 32  # the first thing a new user sees
            assert get_json(base + "healthz") == {"status": "ok"}
            assert get_json(base + "readyz") == {"status": "ok"}
            people = get_json(base + "console/api/people", cookie=f"shuangsui_console={token}")
            assert people[0]["id"] == "admin" and any("执法检查人员" in r for p in people for r in p["roles"])
        finally:
            demo.send_signal(signal.SIGINT)
            _, errors = demo.communicate(timeout=30)
            errors = "".join(told) + errors
        assert ("已存在" in errors) == (run == 1)
    engine = make_engine(f"sqlite:///{data / 'shuangsui-demo.db'}")
    with engine.connect() as connection:
        count = lambda model: connection.execute(select(func.count()).select_from(model)).scalar_one()  # noqa: E731
        assert (count(InspectionObject), count(Inspector) > 50, count(Unit) > 5) == (800, True, True)
