"""Which live streams were pushed with a leaked key: matching by every push form.

A stream's ``url`` names its key in one of these places (Agora's RTMP, RTMPS,
SRT and OBS guides):

* the last path segment under any application name: ``rtmp://host/live/<key>``,
  ``rtmps://host/<app>/<key>``, ``host/live/<key>`` (no scheme);
* an SRT ``streamid``: ``?streamid=<key>``, ``?streamid=<key>?h=<domain>`` (OBS),
  or the access-control syntax ``?streamid=#!::r=<key>,h=<domain>`` (fields in
  any order).

Every candidate is compared as written and percent-decoded, by exact equality:
a key that is a prefix or suffix of another never matches. A key with ``/``,
``?``, ``#`` or a literal ``%XX`` pushed unencoded is matched by the whole raw
tail after the application name. A URL that names a key (any key, in any of
these places, even a lone path segment: ``rtmp://host/<key>``) is matched only
by that key. Only a URL that names none (WHIP pushes with the key as a Bearer
token: ``https://host/whip``) is matched by the key's ``(channel, uid)``, as
read by a GET of the key in the same region.
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
# A path of only one of these names no key: the documented RTMP and WHIP endpoints.
_ENDPOINTS = frozenset({"live", "whip"})


@dataclass(frozen=True, slots=True)
class PushUrl:
    """What a stream's ``url`` says: the protocol guessed from it and the keys it names."""

    protocol: str
    keys: frozenset[str]


def parse_push_url(url: Any) -> PushUrl:
    """The protocol (``rtmp``, ``rtmps``, ``srt``, ``whip`` or ``unknown``) and key candidates.

    Every place a key can sit counts, raw and percent-decoded, so a URL that names
    any key at all has candidates; only a URL with nothing in a key's place (no
    path beyond a documented endpoint name, no ``streamid``) has none.
    """
    if not isinstance(url, str) or not url.strip():
        return PushUrl("unknown", frozenset())
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    protocol = _PROTOCOLS.get(scheme.lower(), "unknown" if scheme else "rtmp")
    # Split by hand: an SRT stream ID starts with "#", which is no fragment here.
    _, _, query = rest.partition("?")
    keys: set[str] = set()
    slash, mark = rest.find("/"), rest.find("?")
    if slash != -1 and (mark == -1 or slash < mark):
        keys.update(_path_keys(rest[slash + 1 :]))
    for field in query.split("&") if query else ():
        name, eq, value = field.partition("=")
        if eq and unquote(name).lower() == "streamid":
            keys.update(_streamid_keys(value))
    keys.discard("")
    return PushUrl(protocol, frozenset(keys))


def _path_keys(raw_path: str) -> set[str]:
    """Key candidates in the raw path after the authority (``?`` and ``#`` kept).

    The last non-empty segment (the documented place), and the whole raw tail
    after the application name (or after the host, with no application name): a
    key with ``/``, ``?`` or ``#`` in it is often pushed unencoded. A path that is
    only a documented endpoint (``/live``, ``/whip``) names no key.
    """
    location = raw_path.partition("?")[0]
    segments = [s for s in location.split("/") if s]
    if not segments or (len(segments) == 1 and unquote(segments[0]).lower() in _ENDPOINTS):
        return set()
    whole = raw_path.strip("/")
    raw = [segments[-1], whole]
    _, _, tail = whole.partition("/")
    tail = tail.lstrip("/")
    if tail:
        raw += [tail, tail.rstrip("/")]
    return _both_forms(raw)


def _both_forms(raw: list[str]) -> set[str]:
    """Each candidate as written and percent-decoded: ``p%20q`` may be a key or ``p q``."""
    return {form for item in raw for form in (item, unquote(item))}


def _streamid_keys(raw: str) -> set[str]:
    """Key candidates in a raw SRT stream ID: the decoded key of each documented
    form (:func:`streamid_key`), and the whole value as written for a key with
    ``?`` or ``%`` in it."""
    found = streamid_key(raw)
    keys = {found} if found else set()
    if not unquote(raw).startswith("#!::"):
        keys |= _both_forms([raw, raw.rpartition("?h=")[0] or raw])
    return keys


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
            # The longest candidate first: the whole raw tail before its last segment.
            for key in sorted(push.keys, key=lambda k: (-len(k), k)):
                if key in self._by_key:
                    return self._by_key[key], Match(URL_MATCH, push.protocol)
            return None
        pair = channel_uid(stream)
        if pair is None or pair not in self._by_channel_uid:
            return None
        return self._by_channel_uid[pair], Match(CHANNEL_UID_MATCH, push.protocol)


def channel_uid(stream: dict[str, Any]) -> tuple[str, str] | None:
    """A listed stream's ``(channel, uid)`` as text, or None if either is missing."""
    channel, uid = _text(stream.get("channel")), _text(stream.get("uid"))
    return None if channel is None or uid is None else (channel, uid)


def same_channel_uid(stream: Any, identity: KeyIdentity) -> bool:
    """Whether ``stream`` has the channel and uid a GET of the key answered."""
    if not isinstance(stream, dict) or not identity.channel or identity.uid is None:
        return False
    return channel_uid(stream) == (identity.channel, identity.uid)


def match_stream(stream: Any, identity: KeyIdentity) -> Match | None:
    """How ``stream`` (one element of an online-streams ``data`` list) belongs to ``identity``."""
    index: KeyIndex[None] = KeyIndex()
    index.add(identity, None)
    found = index.find(stream)
    return None if found is None else found[1]


def usable_sid(sid: Any) -> bool:
    """A SID revoker may put in a path (never ``online-streams/`` or a dot segment)."""
    return isinstance(sid, str) and bool(sid.strip(".")) and "/" not in sid
