"""The emulator's API paths: a raw path split into region, app ID, endpoint and item."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote


@dataclass(frozen=True, slots=True)
class ApiRoute:
    """A parsed API path: ``kind`` is "keys" or "streams"; ``item`` the key or SID."""

    region: str
    app_id: str
    kind: str
    item: str | None


def parse_path(raw_path: str) -> ApiRoute | None:
    """Split a raw path on "/" and unquote each segment; None if it is no API path.

    The region is *not* validated here (case-sensitive check by the caller).
    """
    parts = raw_path.split("/")
    n = len(parts)
    if n not in (8, 9) or parts[0] or parts[2] != "v1" or parts[3] != "projects":
        return None
    if parts[5] != "rtls" or parts[6] != "ingress":
        return None
    if parts[7] == "streamkeys":
        kind = "keys"
    elif parts[7] == "online-streams":
        kind = "streams"
    else:
        return None
    item = unquote(parts[8]) if n == 9 else None
    if item == "":
        return None
    return ApiRoute(unquote(parts[1]), unquote(parts[4]), kind, item)


# The methods each endpoint answers; any other is a 405.
ALLOWED_METHODS: dict[tuple[str, bool], tuple[str, ...]] = {
    ("keys", False): ("POST",),
    ("keys", True): ("GET", "DELETE"),
    ("streams", False): ("GET",),
    ("streams", True): ("GET", "DELETE"),
}
