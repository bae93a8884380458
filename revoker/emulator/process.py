"""``EmulatorProcess``: run the emulator as a subprocess, for integration tests and benchmarks.

Example::

    with EmulatorProcess("--seed-keys", "keys.csv", "--app-id", "app1") as emu:
        env = emu.client_env()          # AGORA_BASE_URL, AGORA_CUSTOMER_ID/SECRET
        ...                             # talk to emu.base_url with emu.credentials
        assert emu.state()["keys"] == []

The process runs ``python -m revoker.emulator --port 0 ARGS...``; the constructor's
``customer_id``/``customer_secret`` are passed in its environment. ``start()`` (or
``with``) waits for the ``base_url=`` line (``RuntimeError`` with the process's stderr
if it exits or stays silent for ``timeout`` seconds). Exiting the ``with`` block sends
SIGTERM (the emulator saves ``--state`` and exits 0) and kills it after 5 s.
stdout and stderr are drained in background threads into ``.output``/``.errors``
(lines after ``base_url=`` may arrive later; both are complete after ``stop()``).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from revoker.credentials import Credentials

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_CLEARED_ENV = ("AGORA_CUSTOMER_ID", "AGORA_CUSTOMER_SECRET", "AGORA_APP_ID", "AGORA_BASE_URL")


class EmulatorProcess:
    """An emulator subprocess on a free loopback port; a context manager."""

    def __init__(
        self,
        *args: str,
        customer_id: str = "emu-test-id",
        customer_secret: str = "emu-test-secret",  # noqa: S107 - a test credential
        env: Mapping[str, str] | None = None,
        timeout: float = 15.0,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.args = list(args)
        self.credentials = Credentials(customer_id, customer_secret)
        self.extra_env = dict(env or {})
        self.timeout = timeout
        self.cwd = cwd
        self.output: list[str] = []
        self.errors: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._base_url: str | None = None
        self._threads: list[threading.Thread] = []

    # lifecycle --------------------------------------------------------------

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "revoker.emulator", "--port", "0", *self.args]

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _CLEARED_ENV}
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = _PACKAGE_ROOT + (os.pathsep + path if path else "")
        env["PYTHONUNBUFFERED"] = "1"
        env["AGORA_CUSTOMER_ID"] = self.credentials.customer_id
        env["AGORA_CUSTOMER_SECRET"] = self.credentials.customer_secret
        env.update(self.extra_env)
        return env

    def start(self) -> EmulatorProcess:
        """Start the process and wait for its ``base_url=`` line."""
        if self._proc is not None:
            raise RuntimeError("emulator already started")
        self._proc = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self._environment(),
            cwd=self.cwd,
        )
        assert self._proc.stdout is not None
        assert self._proc.stderr is not None
        self._drain(self._proc.stdout, self.output, self._lines)
        self._drain(self._proc.stderr, self.errors, None)
        try:
            while True:
                line = self._lines.get(timeout=self.timeout)
                if line is None:
                    raise RuntimeError(self._failure("exited before printing base_url="))
                if line.startswith("base_url="):
                    self._base_url = line.removeprefix("base_url=").strip()
                    return self
        except queue.Empty:
            self.kill()
            raise RuntimeError(self._failure(f"printed no base_url= in {self.timeout} s")) from None
        except BaseException:
            self.kill()
            raise

    def _drain(
        self, stream: IO[str], sink: list[str], lines: queue.Queue[str | None] | None
    ) -> None:
        def run() -> None:
            for line in stream:
                sink.append(line)
                if lines is not None:
                    lines.put(line)
            if lines is not None:
                lines.put(None)

        thread = threading.Thread(target=run, daemon=True, name="emulator-output")
        thread.start()
        self._threads.append(thread)

    def _failure(self, what: str) -> str:
        for thread in self._threads:
            thread.join(timeout=1)
        code = self._proc.poll() if self._proc else None
        return f"emulator {what} (exit code {code}); stderr:\n{''.join(self.errors)}"

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL. Returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for thread in self._threads:
            thread.join(timeout=1)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL at once (no state saved): simulates a crash."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # access -----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; only after ``start()``."""
        if self._base_url is None:
            raise RuntimeError("emulator not started")
        return self._base_url

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("emulator not started")
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def client_env(self) -> dict[str, str]:
        """The variables a revoker run needs to talk to this emulator."""
        return {
            "AGORA_BASE_URL": self.base_url,
            "AGORA_CUSTOMER_ID": self.credentials.customer_id,
            "AGORA_CUSTOMER_SECRET": self.credentials.customer_secret,
        }

    def _admin(self, name: str) -> dict[str, Any]:
        response = httpx.get(f"{self.base_url}/_emulator/{name}", timeout=10)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def state(self) -> dict[str, Any]:
        """``GET /_emulator/state``: ``{"keys": [...], "streams": [...]}``."""
        return self._admin("state")

    def stats(self) -> dict[str, Any]:
        """``GET /_emulator/stats``: request counts per method and status."""
        return self._admin("stats")
