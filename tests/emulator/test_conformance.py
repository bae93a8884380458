"""The curl examples of the two original API pages, run with the real curl binary.

The commands are read from ``shared/api/*.txt`` beside the checkout (or
``REVOKER_API_DOCS``), the host
is replaced by the emulator's base URL and the placeholders by seeded values, then
``-u id:secret`` and an ``X-Request-ID`` header are added.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from revoker.emulator.process import EmulatorProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]


def _api_docs() -> Path:
    """The API pages: $REVOKER_API_DOCS, else shared/api beside the checkout."""
    if "REVOKER_API_DOCS" in os.environ:
        return Path(os.environ["REVOKER_API_DOCS"])
    beside = Path(__file__).resolve().parents[3] / "shared" / "api"
    return beside if beside.exists() else Path("/work/shared/api")


API_DOCS = _api_docs()
DOC_APP_ID = "9d2498880e934632b38b0a68fa2f1622"
KEY = "2dfMTR-Kx_fys"


def _doc_curl(name: str) -> list[str]:
    """The argv of the page's request example.

    A quoted URL may span two lines; the page's ``_2`` line-number lines are dropped.
    """
    path = API_DOCS / name
    assert path.exists(), f"{path} is missing: set REVOKER_API_DOCS to the API pages' folder"
    text_lines = path.read_text(encoding="utf-8").splitlines()
    lines = [line for line in text_lines if not re.fullmatch(r"_\d+", line.strip())]
    start = next(i for i, line in enumerate(lines) if line.startswith("curl "))
    text = lines[start]
    while text.count("'") % 2:
        start += 1
        text += lines[start]
    return shlex.split(text)


def _run(emu: EmulatorProcess, argv: list[str], tmp_path: Path) -> tuple[int, dict[str, str], str]:
    rid = str(uuid.uuid4())
    headers_file, body_file = tmp_path / "headers.txt", tmp_path / "body.txt"
    creds = emu.credentials
    argv = [
        *argv,
        "--silent",
        "--show-error",
        "-u",
        f"{creds.customer_id}:{creds.customer_secret}",
        "-H",
        f"X-Request-ID: {rid}",
        "--dump-header",
        str(headers_file),
        "--output",
        str(body_file),
        "--write-out",
        "%{http_code}",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True)
    headers = {}
    for line in headers_file.read_text().splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    assert headers.get("x-request-id") == rid
    return int(done.stdout), headers, body_file.read_text()


def _substitute(argv: list[str], base_url: str, region: str) -> list[str]:
    out = []
    for arg in argv:
        if arg.startswith("https://api.agora.io"):
            arg = "".join(arg.split()).replace("https://api.agora.io", base_url)
            arg = arg.replace("{{region}}", region).replace("{{appId}}", DOC_APP_ID)
            arg = arg.replace("{{streamKey}}", KEY).replace(":streamkey", KEY)
        out.append(arg)
    return out


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    seed = tmp_path_factory.mktemp("conformance") / "keys.csv"
    seed.write_text(f"stream_key,app_id,channel,uid\n{KEY},{DOC_APP_ID},shx001,1001\n")
    return seed


def test_query_streaming_key_curl_example(seeded: Path, tmp_path: Path) -> None:
    argv = _doc_curl("query-streaming-key.txt")
    with EmulatorProcess("--seed-keys", str(seeded)) as emu:
        status, headers, body = _run(emu, _substitute(argv, emu.base_url, "ap"), tmp_path)
    assert status == 200
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["status"] == "success"
    data = doc["data"]
    assert set(data) == {"streamKey", "channel", "uid", "expiresAfter", "createdAt"}
    assert (data["streamKey"], data["channel"], data["uid"]) == (KEY, "shx001", "1001")
    assert isinstance(data["expiresAfter"], int)
    assert isinstance(data["createdAt"], str)
    assert data["createdAt"].isdigit()


def test_delete_streaming_key_curl_example(seeded: Path, tmp_path: Path) -> None:
    argv = _doc_curl("delete-streaming-key.txt")
    assert "DELETE" in argv
    with EmulatorProcess("--seed-keys", str(seeded)) as emu:
        status, _, body = _run(emu, _substitute(argv, emu.base_url, "eu"), tmp_path)
        assert (status, json.loads(body)) == (200, {"status": "success"})
        remaining = {(k["region"], k["key"]) for k in emu.state()["keys"]}
        assert ("eu", KEY) not in remaining
        assert ("na", KEY) in remaining
        status, _, body = _run(emu, _substitute(argv, emu.base_url, "eu"), tmp_path)
        assert status == 404
        assert json.loads(body) == {
            "status": "error",
            "message": "Resource not found and destroyed.",
        }
