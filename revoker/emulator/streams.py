"""How the emulator's live streams look on the wire: push URLs and ``beginAt``.

A stream seeded with a ``protocol`` gets the URL Agora's guides show for it
(the key's place differs per protocol); one seeded with a ``url`` keeps it as
given, so any form (custom domains, OBS's SRT ``?h=`` suffix, empty) can be
played.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

PROTOCOLS = ("rtmp", "rtmps", "srt", "srt-custom", "whip")


def push_url(protocol: str, region: str, key: str) -> str:
    """The documented push URL of ``protocol`` for ``key`` in ``region``.

    ``whip`` pushes carry the key as a Bearer token, so its URL names no key.
    """
    encoded = quote(key, safe="")
    if protocol == "rtmp":
        return f"rtmp://rtls-ingress-prod-{region}.agoramdn.com/live/{encoded}"
    if protocol == "rtmps":
        return f"rtmps://live.example.com/ingest/{encoded}"
    if protocol == "srt":
        return f"srt://srtlive-rtcpush-prod-{region}.agoramdn.com:6001?streamid={encoded}"
    if protocol == "srt-custom":
        return f"srt://live.example.com:6001?streamid=#!::h=live.example.com,r={encoded}"
    if protocol == "whip":
        return f"https://whip-rtcpush-prod-{region}.agoramdn.com/whip"
    raise ValueError(f"unknown protocol {protocol!r} (expected {', '.join(PROTOCOLS)})")


def begin_at_text(unix_seconds: float) -> str:
    """``beginAt`` as the API writes it: ``2024-01-01 01:01:01.001`` (UTC, no zone)."""
    moment = datetime.fromtimestamp(unix_seconds, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def truthy(value: str) -> bool:
    """A CSV flag: ``1``, ``true``, ``yes`` (any case) are true; anything else false."""
    return value.strip().lower() in ("1", "true", "yes")
