"""The real server in a subprocess, through EmulatorProcess."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from revoker.emulator.process import EmulatorProcess

pytestmark = pytest.mark.integration

KEY_PATH = "/{region}/v1/projects/app1/rtls/ingress/streamkeys/{key}"


def _auth(emu: EmulatorProcess) -> tuple[str, str]:
    return (emu.credentials.customer_id, emu.credentials.customer_secret)


def _seed(tmp_path: Path) -> Path:
    seed = tmp_path / "keys.csv"
    seed.write_text("stream_key,regions,channel,uid\nk%2F1,na;eu,room,7\nk2,,room,8\n")
    return seed


def test_process_serves_seeded_keys_and_admin_endpoints(tmp_path: Path) -> None:
    with EmulatorProcess("--seed-keys", str(_seed(tmp_path)), "--app-id", "app1") as emu:
        assert emu.base_url.startswith("http://127.0.0.1:")
        assert emu.output[0].startswith("base_url=")
        rid = str(uuid.uuid4())
        url = emu.base_url + KEY_PATH.format(region="eu", key="k%252F1")
        response = httpx.get(url, auth=_auth(emu), headers={"X-Request-ID": rid})
        assert response.status_code == 200
        assert response.json()["data"]["streamKey"] == "k%2F1"
        assert response.headers["x-request-id"] == rid
        assert len(emu.state()["keys"]) == 6
        assert emu.stats()["by_method_status"] == {"GET": {"200": 1}}
        assert emu.client_env()["AGORA_BASE_URL"] == emu.base_url
    assert emu.returncode == 0
    # .output is complete once stop() has joined the reader threads
    export = f"export AGORA_BASE_URL={emu.base_url} AGORA_CUSTOMER_ID=emu-test-id "
    assert any(export in line for line in emu.output)


def test_state_file_is_saved_on_sigterm_and_reloaded(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    args = ("--seed-keys", str(_seed(tmp_path)), "--app-id", "app1", "--state", str(state_file))
    with EmulatorProcess(*args) as emu:
        url = emu.base_url + KEY_PATH.format(region="na", key="k2")
        assert httpx.delete(url, auth=_auth(emu)).status_code == 200
    assert emu.returncode == 0
    saved = json.loads(state_file.read_text())
    assert len(saved["keys"]) == 5
    with EmulatorProcess(*args) as emu:
        url = emu.base_url + KEY_PATH.format(region="na", key="k2")
        assert httpx.get(url, auth=_auth(emu)).status_code == 404
        assert len(emu.state()["keys"]) == 5


def test_reset_rate_1_drops_the_connection_without_response(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    seed = _seed(tmp_path)
    args = ("--reset-rate", "1", "--seed-keys", str(seed), "--app-id", "app1")
    with EmulatorProcess(*args, "--journal", str(journal)) as emu:
        url = emu.base_url + KEY_PATH.format(region="na", key="k2")
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            httpx.delete(url, auth=_auth(emu))
        assert any(k["key"] == "k2" and k["region"] == "na" for k in emu.state()["keys"])
    assert emu.returncode == 0
    assert "Exception" not in "".join(emu.errors)
    (line,) = journal.read_text().splitlines()
    assert json.loads(line)["fault"] == "reset"


def test_start_failure_reports_stderr() -> None:
    with pytest.raises(RuntimeError, match="exited before printing base_url"):
        EmulatorProcess("--no-such-option").start()
