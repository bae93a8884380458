"""A 200 or 404 that is not the API's own answer is a failure, never "revoked" or
"absent" (i.e. done).

A wrong base path (against the emulator, which answers unknown routes as a front
gateway would), an nginx-like server answering an HTML 404 to everything, and
catch-all servers answering 200 to everything.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from revoker.agora.client import NOT_THE_API
from revoker.emulator.app import GATEWAY_NOT_FOUND
from revoker.emulator.process import EmulatorProcess
from tests.reliability.helpers import read_audit, revoker_env, run_revoker, task_records

pytestmark = pytest.mark.integration

APP = "app1"
NGINX_404 = GATEWAY_NOT_FOUND  # nginx's own page


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_revoker(*args, env=revoker_env(env), timeout=120)


def records(path: Path, event: str) -> list[dict[str, Any]]:
    return task_records(read_audit(path).records, event)


def test_wrong_base_path_fails_every_pair_then_resume_with_the_right_url_revokes(
    tmp_path: Path,
) -> None:
    keys = ["leaked-key-0001", "leaked-key-0002"]
    seed = tmp_path / "seed.csv"
    seed.write_text("stream_key,app_id\n" + "".join(f"{k},{APP}\n" for k in keys))
    (tmp_path / "keys.txt").write_text("\n".join(keys) + "\n")
    audit = tmp_path / "audit.jsonl"
    common = [str(tmp_path / "keys.txt"), "--app-id", APP, "--audit-log", str(audit)]
    with EmulatorProcess("--seed-keys", str(seed), "--app-id", APP) as emu:
        env = emu.client_env()
        wrong = cli(
            "revoke", *common, "--verify", "--max-attempts", "1",
            "--base-url", emu.base_url + "/dev", "--allow-base-path", env=env,
        )  # fmt: skip
        assert wrong.returncode == 1, wrong.stderr
        for event in ("revoke", "verify"):
            lines = records(audit, event)
            assert len(lines) == 8
            assert {(r["outcome"], r["http_status"], r["message"]) for r in lines} == {
                ("failed", 404, NOT_THE_API)
            }
        assert len(emu.state()["keys"]) == 8  # nothing was revoked

        report = cli("report", str(audit), env=env)
        assert report.returncode == 1
        assert "NOT done" in report.stdout

        resumed = cli("revoke", *common, "--resume", "--verify", env=env)
        assert resumed.returncode == 0, resumed.stderr
        assert emu.state()["keys"] == []
    assert [r["outcome"] for r in records(audit, "revoke")][8:] == ["revoked"] * 8
    assert cli("report", str(audit), env=env).returncode == 0


def serve_everything(
    status: int, body: bytes, content_type: str | None, *, echo_request_id: bool = False
) -> Iterator[str]:
    """A loopback server that answers every request alike under ``content_type`` (no
    header at all when None), with no X-Request-ID unless ``echo_request_id``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self) -> None:
            self.send_response(status)
            if content_type is not None:
                self.send_header("Content-Type", content_type)
            if echo_request_id:
                self.send_header("X-Request-ID", self.headers.get("X-Request-ID", ""))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_DELETE = answer

        def log_message(self, *args: Any) -> None:
            pass

    yield from _serve(Handler)


@pytest.fixture
def nginx_404() -> Iterator[str]:
    yield from serve_everything(404, NGINX_404, "text/html")


# A small and a larger run: one transport decides for every size.
@pytest.mark.parametrize("count", [2, 65], ids=["small-run", "large-run"])
def test_an_html_404_from_a_front_server_is_failed_at_every_run_size(
    tmp_path: Path, nginx_404: str, count: int
) -> None:
    (tmp_path / "keys.txt").write_text("".join(f"plain-key-{i:04d}\n" for i in range(count)))
    audit = tmp_path / "audit.jsonl"
    env = {"AGORA_CUSTOMER_ID": "cid", "AGORA_CUSTOMER_SECRET": "secret", "AGORA_APP_ID": APP}
    result = cli(
        "revoke", str(tmp_path / "keys.txt"), "--base-url", nginx_404, "--verify",
        "--audit-log", str(audit), "--max-rps", "0", "--output", "json", env=env,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["revoke"]["counts"] == {
        "absent": 0,
        "failed": count * 4,
        "not_attempted": 0,
        "revoked": 0,
    }
    assert summary["verify"]["counts"] == {
        "absent": 0,
        "failed": count * 4,
        "not_attempted": 0,
        "present": 0,
    }
    assert {r["message"] for r in records(audit, "revoke")} == {NOT_THE_API}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<!doctype html><title>Console</title><div id=app></div>", "text/html"),
        (b'{"status":"success"}', "application/json"),
    ],
    ids=["single-page-app", "success-without-our-request-id"],
)
def test_a_catch_all_200_is_failed_never_revoked_and_the_keys_stay_to_do(
    tmp_path: Path, body: bytes, content_type: str
) -> None:
    (tmp_path / "keys.txt").write_text("plain-key-0001\nplain-key-0002\n")
    audit = tmp_path / "audit.jsonl"
    env = {"AGORA_CUSTOMER_ID": "cid", "AGORA_CUSTOMER_SECRET": "secret", "AGORA_APP_ID": APP}
    for url in serve_everything(200, body, content_type):
        result = cli(
            "revoke", str(tmp_path / "keys.txt"), "--base-url", url, "--verify",
            "--max-attempts", "1", "--audit-log", str(audit), "--output", "json", env=env,
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["revoke"]["counts"] == {
        "absent": 0,
        "failed": 8,
        "not_attempted": 0,
        "revoked": 0,
    }
    assert summary["verify"]["counts"] == {
        "absent": 0,
        "failed": 8,
        "not_attempted": 0,
        "present": 0,
    }
    assert {(r["http_status"], r["message"]) for r in records(audit, "revoke")} == {
        (200, NOT_THE_API)
    }
    report = cli("report", str(audit), env=env)
    assert report.returncode == 1
    assert "NOT done" in report.stdout


@pytest.mark.parametrize(
    ("content_type", "done"),
    [
        ("text/html", False),
        ("text/plain; charset=utf-8", False),
        (None, False),
        ("application/jsonp", False),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
    ],
    ids=["html", "plain", "no-content-type", "jsonp", "json-charset", "json-any-case"],
)
def test_a_json_body_counts_as_the_apis_only_under_a_json_media_type(
    tmp_path: Path, content_type: str | None, done: bool
) -> None:
    (tmp_path / "keys.txt").write_text("plain-key-0001\n")
    audit = tmp_path / "audit.jsonl"
    env = {"AGORA_CUSTOMER_ID": "cid", "AGORA_CUSTOMER_SECRET": "secret", "AGORA_APP_ID": APP}
    for url in serve_everything(200, b'{"status":"success"}', content_type, echo_request_id=True):
        result = cli(
            "revoke", str(tmp_path / "keys.txt"), "--base-url", url, "--regions", "na",
            "--max-attempts", "1", "--audit-log", str(audit), "--output", "json", env=env,
        )  # fmt: skip
    summary = json.loads(result.stdout)
    if done:
        assert result.returncode == 0, result.stderr
        assert summary["revoke"]["counts"] == {
            "absent": 0,
            "failed": 0,
            "not_attempted": 0,
            "revoked": 1,
        }
    else:
        assert result.returncode == 1, result.stderr
        assert summary["revoke"]["counts"] == {
            "absent": 0,
            "failed": 1,
            "not_attempted": 0,
            "revoked": 0,
        }
        assert {r["message"] for r in records(audit, "revoke")} == {NOT_THE_API}


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 in a thread; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
