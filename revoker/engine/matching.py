"""Which live streams were pushed with a leaked key: matching by every push form.

A stream's ``url`` names its key in one of these places (Agora's RTMP, RTMPS,
SRT and OBS guides):

* the last path segment under any application name: ``rtmp://host/live/<key>``,
  ``rtmps://host/<app>/<key>``, ``host/live/<key>`` (no scheme);
* an SRT ``streamid``: ``?streamid=<key>``, ``?streamid=<key>?h=<domain>`` (OBS),
  or the access-control syntax ``?streamid=#!::r=<key>,h=<domain>`` (fields in
  any order).

Every candidate is percent-decoded and compared by exact equality: a key that is
a prefix or suffix of another never matches. A URL that names a key (any key)
is matched only by that key. A URL that names none (WHIP pushes with the key as
a Bearer token) is matched by the key's ``(channel, uid)``, as read by a GET of
the key in the same region.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

T = TypeVar("T")

URL_MATCH = "url"
CHANNEL_UID_MATCH = "channel_uid"

_PROTOCOLS = {"rtmp": "rtmp", "rtmps": "rtmps", "srt": "srt", "http": "whip", "https": "whip"}


@dataclass(frozen=True, slots=True)
class PushUrl:
    """What a stream's ``url`` says: the protocol guessed from it and the keys it names."""

    protocol: str
    keys: frozenset[str]


def parse_push_url(url: Any) -> PushUrl:
    """The protocol (``rtmp``, ``rtmps``, ``srt``, ``whip`` or ``unknown``) and key candidates."""
    if not isinstance(url, str) or not url.strip():
        return PushUrl("unknown", frozenset())
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    protocol = _PROTOCOLS.get(scheme.lower(), "unknown" if scheme else "rtmp")
    # Split by hand: an SRT stream ID starts with "#", which is no fragment here.
    location, _, query = rest.partition("?")
    keys: set[str] = set()
    segments = location.split("/")[1:]  # drop the authority
    if segments and segments[-1] == "":
        segments = segments[:-1]  # one trailing slash
    if len(segments) >= 2 and segments[-1]:  # an application name, then the key
        keys.add(unquote(segments[-1]))
    for field in query.split("&") if query else ():
        name, eq, value = field.partition("=")
        if eq and unquote(name).lower() == "streamid":
            key = streamid_key(value)
            if key:
                keys.add(key)
    return PushUrl(protocol, frozenset(keys))


def streamid_key(raw: str) -> str | None:
    """The key in a raw (still percent-encoded) SRT stream ID: ``#!::r=<key>,...``,
    ``<key>?h=<domain>`` or ``<key>``; fields are split before they are decoded."""
    decode: Callable[[str], str] = unquote
    if not raw.startswith("#!::") and unquote(raw).startswith("#!::"):
        raw, decode = unquote(raw), str  # the whole stream ID was encoded at once
    if raw.startswith("#!::"):
        for item in raw[4:].split(","):
            name, eq, value = item.partition("=")
            if eq and decode(name).strip() == "r":
                return decode(value) or None
        return None
    return unquote(raw.split("?", 1)[0]) or None


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    """A leaked key as matching needs it; ``channel`` is None unless a GET of the key answered."""

    key: str
    channel: str | None = None
    uid: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """A live stream pushed with a key: how it was tied to the key and its protocol."""

    kind: str
    protocol: str


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


class KeyIndex(Generic[T]):
    """Leaked keys (each with a value, e.g. its task), looked up by a live stream."""

    def __init__(self) -> None:
        self._by_key: dict[str, T] = {}
        self._by_channel_uid: dict[tuple[str, str], T] = {}

    def add(self, identity: KeyIdentity, value: T) -> None:
        self._by_key.setdefault(identity.key, value)
        if identity.channel and identity.uid is not None:
            self._by_channel_uid.setdefault((identity.channel, identity.uid), value)

    def __len__(self) -> int:
        return len(self._by_key)

    def find(self, stream: Any, push: PushUrl | None = None) -> tuple[T, Match] | None:
        """The key ``stream`` was pushed with, and how it matched; None if none of these."""
        if not isinstance(stream, dict):
            return None
        if push is None:
            push = parse_push_url(stream.get("url"))
        if push.keys:
            # A URL that names a key belongs to that key only, whatever its channel and uid.
            for key in sorted(push.keys):
                if key in self._by_key:
                    return self._by_key[key], Match(URL_MATCH, push.protocol)
            return None
        channel, uid = _text(stream.get("channel")), _text(stream.get("uid"))
        if channel is None or uid is None:
            return None
        if (channel, uid) not in self._by_channel_uid:
            return None
        return self._by_channel_uid[(channel, uid)], Match(CHANNEL_UID_MATCH, push.protocol)


def match_stream(stream: Any, identity: KeyIdentity) -> Match | None:
    """How ``stream`` (one element of an online-streams ``data`` list) belongs to ``identity``."""
    index: KeyIndex[None] = KeyIndex()
    index.add(identity, None)
    found = index.find(stream)
    return None if found is None else found[1]


def usable_sid(sid: Any) -> bool:
    """A SID revoker may put in a path (never ``online-streams/`` or a dot segment)."""
    return isinstance(sid, str) and bool(sid.strip(".")) and "/" not in sid
