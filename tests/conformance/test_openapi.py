"""revoker against Agora's own OpenAPI file, not only our emulator.

Stoplight Prism serves conformance/media-gateway.yaml (extracted from Agora's
Media Gateway OpenAPI file, source commit named in it): as a mock that validates
every request revoker sends, then as a proxy in front of the emulator that also
validates every answer. Each command that talks to the API runs through it, with
Basic and with HMAC signing; any violation Prism reports fails the test.
`make conformance` installs Prism from npm (conformance/package.json) and runs
this module; elsewhere it is skipped.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from revoker.emulator.process import EmulatorProcess
from tests.reliability.helpers import revoker_env, run_revoker, wait_for

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "conformance" / "media-gateway.yaml"
PRISM = os.environ.get("REVOKER_PRISM", "")

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.skipif(not PRISM, reason="make conformance runs these (Stoplight Prism from npm)"),
]

APP = "9d2498880e934632b38b0a68fa2f1622"
# Keys as Agora issues them (letters, digits, - and _).
KEYS = ["oltr0Q_3jC2Z8EM7KgFaCY2FI9flNPho", "5cQoz4humh8VbkmXkSIkovJ3AL-bFDi3"]
ROTATED = "g3mMctzDUQzylTuCGkd3f1PG1wI-zouE"
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Prism:
    """A running ``prism mock|proxy`` and its log."""

    process: subprocess.Popen[bytes]
    log: Path
    base_url: str

    def text(self) -> str:
        return COLOUR.sub("", self.log.read_text(encoding="utf-8", errors="replace"))

    def requests(self) -> int:
        return len(re.findall(r"\[HTTP SERVER\] \S+ \S+ .*Request received", self.text()))

    def violations(self) -> list[str]:
        return [line.strip() for line in self.text().splitlines() if "Violation:" in line]


@pytest.fixture
def prism_factory(tmp_path: Path) -> Iterator[Callable[..., Prism]]:
    started: list[Prism] = []

    def start(*args: str, port: int | None = None) -> Prism:
        port = port or free_port()
        log = tmp_path / f"prism-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [PRISM, *args, "-h", "127.0.0.1", "-p", str(port)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        prism = Prism(process, log, f"http://127.0.0.1:{port}")
        started.append(prism)
        wait_for(
            lambda: "Prism is listening" in prism.text() or process.poll() is not None,
            timeout=60, what="prism to listen",
        )  # fmt: skip
        assert process.poll() is None, prism.text()
        return prism

    yield start
    for prism in started:
        # Prism runs node children: stop its whole process group, which it alone is in.
        os.killpg(prism.process.pid, signal.SIGTERM)
        prism.process.wait(timeout=30)


def keys_csv(tmp_path: Path, keys: list[str]) -> Path:
    path = tmp_path / "keys.csv"
    path.write_text("stream_key,app_id\n" + "".join(f"{k},{APP}\n" for k in keys))
    return path


def every_command(tmp_path: Path, env: dict[str, str], auth: str) -> dict[str, int]:
    """Each command that talks to the API, once; their exit codes by name."""
    keys = str(keys_csv(tmp_path, KEYS))
    audit = str(tmp_path / f"audit-{auth}.jsonl")
    commands = {
        "streams": ["streams", keys],
        "show": ["show", "--app-id", APP, KEYS[0]],
        "prune": ["prune", "--expired", keys, "--audit-log", str(tmp_path / f"prune-{auth}.jsonl")],
        "verify": ["verify", keys, "--audit-log", str(tmp_path / f"verify-{auth}.jsonl")],
        "rotate": [
            "rotate", "--app-id", APP, "--key", ROTATED, "--disconnect",
            "--new-keys-file", str(tmp_path / f"new-keys-{auth}.csv"),
            "--audit-log", str(tmp_path / f"rotate-{auth}.jsonl"),
        ],
        "revoke": ["revoke", keys, "--verify", "--disconnect", "--audit-log", audit],
    }  # fmt: skip
    codes = {}
    for name, args in commands.items():
        result = run_revoker(*args, env={**env, "AGORA_AUTH": auth}, timeout=120)
        assert "Traceback" not in result.stderr, result.stderr
        codes[name] = result.returncode
    return codes


@pytest.mark.parametrize("auth", ["basic", "hmac"])
def test_every_request_revoker_sends_passes_agoras_openapi_file(
    tmp_path: Path, prism_factory: Callable[..., Prism], auth: str
) -> None:
    prism = prism_factory("mock", str(SPEC))
    env = revoker_env(
        {
            "AGORA_BASE_URL": prism.base_url,
            "AGORA_FALLBACK_BASE_URL": prism.base_url,
            "AGORA_CUSTOMER_ID": "conformance-customer",
            "AGORA_CUSTOMER_SECRET": "conformance-secret",
            "AGORA_APP_ID": APP,
        }
    )
    every_command(tmp_path, env, auth)
    print(
        f"conformance mock, {auth}: {prism.requests()} requests, "
        f"{len(prism.violations())} violations"
    )
    assert prism.requests() >= 40, prism.text()[-3000:]
    assert prism.violations() == [], "\n".join(prism.violations()[:20])


@pytest.mark.parametrize("auth", ["basic", "hmac"])
def test_every_emulator_answer_passes_agoras_openapi_file(
    tmp_path: Path, prism_factory: Callable[..., Prism], auth: str
) -> None:
    seed = keys_csv(tmp_path, [*KEYS, ROTATED])
    live = tmp_path / "live.csv"
    live.write_text(
        "stream_key,app_id,region,channel,uid\n"
        f"{KEYS[0]},{APP},na,room-1,1001\n{ROTATED},{APP},eu,room-2,2002\n"
    )
    port = free_port()
    # The proxy sends the emulator its own Host: HMAC was signed for the proxy's.
    with EmulatorProcess(
        "--seed-keys", str(seed), "--live-streams", str(live),
        "--signed-host", f"127.0.0.1:{port}",
    ) as emu:  # fmt: skip
        prism = prism_factory("proxy", str(SPEC), emu.base_url, port=port)
        env = revoker_env({**emu.client_env(), "AGORA_BASE_URL": prism.base_url})
        env["AGORA_FALLBACK_BASE_URL"] = prism.base_url
        codes = every_command(tmp_path, env, auth)
        left = {k["key"] for k in emu.state()["keys"]}
    # Through the proxy, every command ends as it does against the emulator itself.
    assert codes == {
        "streams": 1, "show": 0, "prune": 0, "verify": 1, "rotate": 0, "revoke": 0,
    }, codes  # fmt: skip
    assert not left & {*KEYS, ROTATED}
    print(
        f"conformance proxy, {auth}: {prism.requests()} requests, "
        f"{len(prism.violations())} violations"
    )
    assert prism.requests() >= 40, prism.text()[-3000:]
    assert prism.violations() == [], "\n".join(prism.violations()[:20])
