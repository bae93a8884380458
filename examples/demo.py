"""`make demo`: the whole job against the local emulator, on a fresh machine.

Starts the emulator on a free loopback port seeded with examples/keys.csv,
runs `revoker revoke examples/keys.csv --verify` against it, prints the
summary and the audit log's path, stops the emulator, and exits with
revoker's exit code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from revoker.emulator.process import EmulatorProcess

ROOT = Path(__file__).resolve().parent.parent
KEYS = ROOT / "examples" / "keys.csv"
DEMO_APP = "9d2498880e934632b38b0a68fa2f1622"  # for the rows of keys.csv without an app_id


def main() -> int:
    workdir = ROOT / ".demo"
    workdir.mkdir(exist_ok=True)
    audit = workdir / f"audit-{time.strftime('%Y%m%dT%H%M%S')}.jsonl"
    started = time.monotonic()
    with EmulatorProcess(
        "--seed-keys", str(KEYS), "--app-id", DEMO_APP,
        customer_id="demo-customer", customer_secret="demo-secret-not-for-production",
    ) as emulator:
        print(f"emulator: {emulator.base_url} (seeded with {KEYS.relative_to(ROOT)})", flush=True)
        env = {**os.environ, **emulator.client_env(), "AGORA_APP_ID": DEMO_APP}
        command = [sys.executable, "-m", "revoker", "revoke", str(KEYS.relative_to(ROOT)),
                   "--verify", "--audit-log", str(audit.relative_to(ROOT))]
        print("$ revoker " + " ".join(command[3:]), flush=True)
        code = subprocess.call(command, env=env, cwd=ROOT)
        left = [k for k in emulator.state().get("keys", [])]
    print(f"\naudit log: {audit.relative_to(ROOT)}  ({sum(1 for _ in audit.open())} lines)")
    print(f"keys left in the emulator: {len(left)}")
    print(f"demo finished in {time.monotonic() - started:.1f} s with exit code {code}")
    venv = Path(sys.executable).parent
    print(f"revoker itself: {venv / 'revoker'} --help (or: . {venv / 'activate'}); "
          "README.md, 'The two commands', tries its commands on the emulator")
    return code


if __name__ == "__main__":
    sys.exit(main())
