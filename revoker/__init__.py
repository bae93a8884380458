"""revoker: revoke Agora Media Gateway streaming keys in every region, with an audit trail."""

import sys

__version__ = "0.1.0"

# httpx imports its own command line (httpx._main: click, pygments and rich) whenever
# they are installed, a large part of revoker's start-up; revoker never runs it.
# Marked missing before httpx is first imported, httpx keeps its stub ``httpx.main``.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
