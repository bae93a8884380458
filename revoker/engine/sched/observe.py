"""What a run tells a watcher (a progress display, a periodic log line) as it goes.

The engine calls an observer; it never draws or logs progress itself, so the
display is the CLI's choice (a bar on a TTY, a log line elsewhere, nothing).
"""

from __future__ import annotations

from typing import Protocol

from revoker.models import TaskResult


class RunObserver(Protocol):
    """Told when each pass starts and each audit line of a task is written."""

    def pass_started(
        self,
        event: str,
        total: int,
        rate: float | None,
        *,
        behind: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """A pass of ``total`` tasks starts; ``rate`` is its paced requests/s (None: no cap).

        ``behind``: the pass it runs behind (its tasks come ``delay`` s after that pass
        ends them), so its pace is that pass's, not its own budget's.
        """

    def recorded(self, event: str, result: TaskResult) -> None:
        """A task line of ``event`` was written (follow-up lines such as cuts included)."""
