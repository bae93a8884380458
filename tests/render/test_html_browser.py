"""The html report in a real browser: Debian's headless Chromium opens the page of a
real run, no console error (a CSP violation is one), the SVG has its marks, and a
screenshot is saved.

Run by ``make browser-test`` (which installs chromium if missing, and sets
REVOKER_BROWSER_TEST=1); REVOKER_SCREENSHOT names the PNG (default: in tmp_path).
Chromium's DevTools socket listens on 127.0.0.1 only; the page loads nothing.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from revoker.emulator.process import EmulatorProcess
from revoker.models import REGIONS
from tests.reliability.helpers import make_keys, revoker_env, run_revoker

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("REVOKER_BROWSER_TEST") != "1",
        reason="the browser check runs with make browser-test (it installs chromium)",
    ),
]

APP = "app1"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0", "--window-size=1100,1000",
)  # fmt: skip


class DevTools:
    """A minimal Chrome DevTools Protocol client over the page's websocket."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self._next = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == ident:
                assert "error" not in message, message
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)
        raise AssertionError(f"no answer to {method}")

    def wait_for(self, method: str) -> None:
        deadline = time.monotonic() + 30
        while not any(e.get("method") == method for e in self.events):
            assert time.monotonic() < deadline, f"no {method}"
            self.events.append(json.loads(self.socket.recv(timeout=30)))

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return answer["result"].get("value")


@contextmanager
def chromium() -> Iterator[DevTools]:
    binary = shutil.which("chromium")
    assert binary, "make browser-test installs Debian's chromium first"
    # Chromium's helpers may still touch the profile as they exit: cleanup errors are not ours.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )  # fmt: skip
        try:
            port = None
            deadline = time.monotonic() + 30
            assert proc.stderr is not None
            while port is None and time.monotonic() < deadline:
                line = proc.stderr.readline()
                assert line or proc.poll() is None, "chromium exited before listening"
                found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
                port = int(found.group(1)) if found else None
            assert port, "chromium did not open its DevTools socket"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            url = pages[0]["webSocketDebuggerUrl"]
            with connect(url, max_size=64 * 1024 * 1024, open_timeout=20) as socket:
                yield DevTools(socket)
        finally:
            # The browser and its helper processes: the group this test started.
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def real_run_page(tmp_path: Path) -> Path:
    """The page of a run with 429s and 5xx, a 401 halt and its resume, streams cut."""
    keys = make_keys(40)
    seed = tmp_path / "seed.csv"
    seed.write_text("stream_key,app_id\n" + "".join(f'"{k}",{APP}\n' for k in keys))
    streams = tmp_path / "streams.csv"
    streams.write_text(
        "sid,app_id,region,stream_key,channel,uid,url,protocol\n"
        + "".join(
            f'S{i},{APP},{REGIONS[i % 4]},"{keys[i * 3]}",room{i},{i},,{("rtmp", "srt")[i % 2]}\n'
            for i in range(8)
        )
    )
    audit = tmp_path / "audit.jsonl"
    args = ["revoke", str(seed), "--audit-log", str(audit), "--disconnect", "--verify"]
    args += ["--verify-delay", "0.3", "--max-rps", "40"]
    with EmulatorProcess(
        "--seed-keys", str(seed), "--live-streams", str(streams),
        "--throttle-rate", "0.1", "--error-rate", "0.05", "--seed", "11", "--latency-ms", "20",
    ) as emu:  # fmt: skip
        wrong = revoker_env({**emu.client_env(), "AGORA_CUSTOMER_SECRET": "wrong-secret"})
        assert run_revoker(*args, env=wrong).returncode == 3
        time.sleep(1)  # the wait for new credentials shows on the timeline
        resumed = run_revoker(*args, "--resume", env=revoker_env(emu.client_env()))
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    result = run_revoker(
        "report", audit.name, "--format", "html", "--verify", env=revoker_env(), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    page = tmp_path / "incident.html"
    page.write_text(result.stdout, encoding="utf-8")
    return page


MARKS = """JSON.stringify({
  verdict: document.getElementById('verdict').textContent,
  steps: [...document.querySelectorAll('#timeline polyline.step')]
    .filter(p => p.getBBox().width > 0).length,
  cuts: document.querySelectorAll('#timeline path.cut').length,
  halts: document.querySelectorAll('#timeline line.halt').length,
  resumes: document.querySelectorAll('#timeline line.resume').length,
  verify: document.querySelectorAll('#timeline rect.verify-pass').length,
  bursts: document.querySelectorAll('#timeline rect.throttled, #timeline rect.retry').length,
  width: document.getElementById('timeline').getBoundingClientRect().width,
  scripts: document.scripts.length,
})"""


def test_the_page_renders_in_chromium_without_errors_with_its_timeline(tmp_path: Path) -> None:
    page = real_run_page(tmp_path)
    with chromium() as tools:
        for domain in ("Page", "Runtime", "Log"):
            tools.call(f"{domain}.enable")
        tools.call("Page.navigate", url=page.as_uri())
        tools.wait_for("Page.loadEventFired")
        marks = json.loads(tools.evaluate(MARKS))
        size = tools.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = tools.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": 1100, "height": min(size["height"], 1150), "scale": 1},
        )
        errors = [
            e
            for e in tools.events
            if e.get("method") == "Runtime.exceptionThrown"
            or (
                e.get("method") == "Runtime.consoleAPICalled"
                and e["params"].get("type") in ("error", "assert")
            )
            or (
                e.get("method") == "Log.entryAdded"
                and e["params"]["entry"].get("level") in ("error", "warning")
            )
        ]
    assert errors == []
    assert marks["verdict"].startswith("all ")
    assert marks["steps"] == len(REGIONS)
    assert marks["cuts"] >= 1
    assert marks["halts"] == marks["resumes"] == marks["verify"] == 1
    assert marks["bursts"] >= 1
    assert marks["width"] > 600
    assert marks["scripts"] == 0
    target = Path(os.environ.get("REVOKER_SCREENSHOT") or tmp_path / "report-html.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    data = base64.b64decode(shot["data"])
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    target.write_bytes(data)
    print(f"screenshot: {target}")
