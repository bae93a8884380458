"""In-memory state of the emulator: streaming keys and live streams per (region, app ID).

Seed files are read by :mod:`revoker.emulator.seeds`.

State file (``--state``): JSON ``{"version": 1, "keys": [...], "streams": [...]}``,
read at start if it exists and written atomically (tmp file + ``os.replace``) at exit.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from revoker.emulator.streams import begin_at_text, push_url

STATE_VERSION = 1


class SeedError(ValueError):
    """A seed or state file is malformed; ``str()`` names ``file:line``."""

    def __init__(self, path: str | os.PathLike[str], line: int, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        super().__init__(f"{self.path}:{line}: {message}")


@dataclass(slots=True)
class StreamKey:
    """One streaming key stored in one region of one app."""

    stream_key: str
    channel: str = ""
    uid: str = ""
    expires_after: int = 0
    created_at: int = 0

    def to_api(self) -> dict[str, Any]:
        """The ``data`` object of a create/query response (``createdAt`` is a string)."""
        return {
            "streamKey": self.stream_key,
            "channel": self.channel,
            "uid": self.uid,
            "expiresAfter": self.expires_after,
            "createdAt": str(self.created_at),
        }


@dataclass(slots=True)
class LiveStream:
    """One stream currently pushed to a region of an app with a streaming key."""

    sid: str
    app_id: str
    region: str
    stream_key: str
    channel: str = ""
    uid: str = ""
    status: str = "Running"
    begin_at: float = 0
    bitrate: int = 2500
    video: dict[str, int] = field(default_factory=lambda: {"width": 1280, "height": 720, "fps": 30})
    audio: dict[str, int] = field(default_factory=lambda: {"channels": 2, "sampleRate": 48000})
    protocol: str = "rtmp"
    push_url: str | None = None  # as given; None: the documented URL of ``protocol``
    ignore_disconnect: bool = False
    start_after_lists: int = 0
    ends_at: float | None = None  # set by a force-disconnect; gone from then on

    @property
    def url(self) -> str:
        if self.push_url is not None:
            return self.push_url
        return push_url(self.protocol, self.region, self.stream_key)

    def to_api(self) -> dict[str, Any]:
        """One element of the online-streams ``data`` list."""
        return {
            "sid": self.sid,
            "channel": self.channel,
            "uid": self.uid,
            "url": self.url,
            "status": self.status,
            "beginAt": begin_at_text(self.begin_at),
            "bitrate": self.bitrate,
            "video": dict(self.video),
            "audio": dict(self.audio),
        }


def new_sid() -> str:
    return uuid.uuid4().hex.upper()


def new_stream_key() -> str:
    return secrets.token_urlsafe(24)


class EmulatorState:
    """Keys by ``(region, app_id)`` and live streams by SID. Not thread-safe (one event loop)."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], dict[str, StreamKey]] = {}
        self.streams: dict[str, LiveStream] = {}
        # Listings answered per (region, app_id): streams with start_after_lists start then.
        self.lists_served: dict[tuple[str, str], int] = {}

    # keys -----------------------------------------------------------------

    def add_key(self, region: str, app_id: str, key: StreamKey) -> None:
        self.keys.setdefault((region, app_id), {})[key.stream_key] = key

    def get_key(self, region: str, app_id: str, stream_key: str) -> StreamKey | None:
        bucket = self.keys.get((region, app_id))
        return bucket.get(stream_key) if bucket else None

    def delete_key(self, region: str, app_id: str, stream_key: str) -> bool:
        bucket = self.keys.get((region, app_id))
        if bucket is None or bucket.pop(stream_key, None) is None:
            return False
        if not bucket:
            del self.keys[(region, app_id)]
        return True

    def create_key(
        self, region: str, app_id: str, *, channel: str, uid: str, expires_after: int
    ) -> StreamKey:
        key = StreamKey(new_stream_key(), channel, uid, expires_after, int(time.time()))
        self.add_key(region, app_id, key)
        return key

    def iter_keys(self) -> Iterator[tuple[str, str, StreamKey]]:
        """Every ``(region, app_id, key)``, sorted for stable output."""
        for (region, app_id), bucket in sorted(self.keys.items()):
            for name in sorted(bucket):
                yield region, app_id, bucket[name]

    def key_count(self) -> int:
        return sum(len(bucket) for bucket in self.keys.values())

    # streams --------------------------------------------------------------

    def add_stream(self, stream: LiveStream) -> None:
        self.streams[stream.sid] = stream

    def list_streams(
        self, region: str, app_id: str, channel: str | None = None, *, now: float | None = None
    ) -> list[LiveStream]:
        """The live streams of an app in a region (of one channel if given)."""
        self.end_disconnected(time.time() if now is None else now)
        return [
            s
            for s in self.streams.values()
            if s.region == region
            and s.app_id == app_id
            and (channel is None or s.channel == channel)
            and self.started(s)
        ]

    def started(self, stream: LiveStream) -> bool:
        """False while a stream waits for its ``start_after_lists`` listings."""
        served = self.lists_served.get((stream.region, stream.app_id), 0)
        return stream.start_after_lists <= served

    def count_listing(self, region: str, app_id: str, now: float) -> None:
        """One more listing answered; streams waiting for it start now."""
        served = self.lists_served.get((region, app_id), 0) + 1
        self.lists_served[(region, app_id)] = served
        for s in self.streams.values():
            if (s.region, s.app_id) == (region, app_id) and s.start_after_lists == served:
                s.begin_at = now

    def live_stream(self, sid: str, now: float) -> LiveStream | None:
        """The stream with this SID if it is live (started, not yet disconnected)."""
        self.end_disconnected(now)
        stream = self.streams.get(sid)
        return stream if stream is not None and self.started(stream) else None

    def end_disconnected(self, now: float) -> None:
        """Drop the streams whose force-disconnect has taken effect by ``now``."""
        ended = [
            sid for sid, s in self.streams.items() if s.ends_at is not None and s.ends_at <= now
        ]
        for sid in ended:
            del self.streams[sid]

    def snapshot(self) -> dict[str, Any]:
        """Every key and live stream, for ``GET /_emulator/state``."""
        keys = [
            {
                "region": region,
                "app_id": app_id,
                "key": key.stream_key,
                "channel": key.channel,
                "uid": key.uid,
                "expiresAfter": key.expires_after,
                "createdAt": str(key.created_at),
            }
            for region, app_id, key in self.iter_keys()
        ]
        streams = [
            {"app_id": s.app_id, "region": s.region, "stream_key": s.stream_key, **s.to_api()}
            for s in self.streams.values()
        ]
        return {"keys": keys, "streams": streams}

    # persistence ----------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "keys": [
                {"region": region, "app_id": app_id, **asdict(key)}
                for region, app_id, key in self.iter_keys()
            ],
            "streams": [asdict(s) for s in self.streams.values()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EmulatorState:
        state = cls()
        for item in data.get("keys", []):
            item = dict(item)
            region, app_id = item.pop("region"), item.pop("app_id")
            state.add_key(region, app_id, StreamKey(**item))
        for item in data.get("streams", []):
            state.add_stream(LiveStream(**item))
        return state

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state as JSON atomically: a temporary file, then ``os.replace``."""
        target = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.to_json(), fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EmulatorState:
        """Read a state file written by :meth:`save`; :class:`SeedError` if it is malformed."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
                raise SeedError(path, 1, f"not a version {STATE_VERSION} emulator state file")
            return cls.from_json(data)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise SeedError(path, 1, f"invalid state file: {exc}") from exc
