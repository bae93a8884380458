"""The emulator app in-process through httpx.ASGITransport."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from revoker.agora.auth import basic_header, hmac_headers, http_date
from revoker.credentials import Credentials
from revoker.emulator.app import ConnectionReset
from revoker.emulator.routes import parse_path
from revoker.emulator.state import EmulatorState, LiveStream

from .conftest import (
    APP_ID,
    CREDS,
    call,
    key_path,
    make_app,
    seeded_state,
    streams_path,
    with_client,
)

AUTH_ERROR = {"status": "error", "message": "Invalid authentication credentials."}
NOT_FOUND = {"status": "error", "message": "Resource not found and destroyed."}


# keys ---------------------------------------------------------------------------


def test_get_key_returns_documented_shape() -> None:
    app = make_app(seeded_state("k1"))
    response = call(app, "GET", key_path("k1"))
    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "data": {
            "streamKey": "k1",
            "channel": "chan",
            "uid": "1001",
            "expiresAfter": 0,
            "createdAt": "1686820170",
        },
    }


def test_delete_key_removes_it_in_that_region_only() -> None:
    app = make_app(seeded_state("k1", regions=("na", "eu")))
    response = call(app, "DELETE", key_path("k1", "na"))
    assert (response.status_code, response.json()) == (200, {"status": "success"})
    assert call(app, "GET", key_path("k1", "na")).status_code == 404
    assert call(app, "GET", key_path("k1", "eu")).status_code == 200


def test_unknown_key_is_404_for_get_and_delete() -> None:
    app = make_app(seeded_state("k1"))
    for method in ("GET", "DELETE"):
        response = call(app, method, key_path("nope"))
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert call(app, "GET", key_path("k1", app_id="other-app")).status_code == 404


def test_create_key_stores_it_and_returns_its_data() -> None:
    app = make_app()
    settings = {"channel": "shx001", "uid": "1001", "expiresAfter": 3600}
    response = call(app, "POST", key_path("", "eu").rstrip("/"), json={"settings": settings})
    assert response.status_code == 200
    data = response.json()["data"]
    assert {k: data[k] for k in ("channel", "uid", "expiresAfter")} == settings
    assert isinstance(data["createdAt"], str)
    assert data["createdAt"].isdigit()
    fetched = call(app, "GET", key_path(data["streamKey"], "eu"))
    assert fetched.json()["data"] == data
    assert call(app, "GET", key_path(data["streamKey"], "na")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"settings": {"channel": 5}}',
        b'{"settings": {"channel": "c", "uid": "1", "expiresAfter": -1}}',
        b'{"settings": {"channel": "c", "uid": "1", "expiresAfter": true}}',
        json.dumps({"settings": {"channel": "x" * 64, "uid": "1"}}).encode(),
    ],
)
def test_create_key_with_invalid_settings_is_400(body: bytes) -> None:
    app = make_app()
    path = "/na/v1/projects/app1/rtls/ingress/streamkeys"
    response = call(app, "POST", path, content=body)
    assert response.status_code == 400
    assert response.json() == {"status": "error", "message": "Invalid settings."}
    assert app.emulator.state.key_count() == 0


@pytest.mark.parametrize(
    "key",
    ["a/../b?x#y", "..", ".", "%2F", "k e y+", "é/ü", "line\nbreak", "-_-", "a;b,c"],
)
def test_hostile_key_is_routed_as_one_segment(key: str) -> None:
    app = make_app(seeded_state(key, "a", "b"))
    response = call(app, "GET", key_path(key))
    assert response.status_code == 200
    assert response.json()["data"]["streamKey"] == key
    assert call(app, "DELETE", key_path(key)).status_code == 200
    assert app.emulator.state.get_key("na", APP_ID, key) is None
    assert app.emulator.state.get_key("na", APP_ID, "a") is not None


def test_parse_path_unquotes_each_raw_segment() -> None:
    route = parse_path("/na/v1/projects/app%2F1/rtls/ingress/streamkeys/a%2F..%2Fb%3Fx%23y")
    assert route is not None
    assert (route.region, route.app_id, route.kind, route.item) == (
        "na",
        "app/1",
        "keys",
        "a/../b?x#y",
    )
    assert parse_path("/na/v1/projects/app/rtls/ingress/streamkeys/a/b") is None
    assert parse_path("/na/v1/projects/app/rtls/ingress/streamkeys/") is None


@pytest.mark.parametrize(
    "path",
    [
        "/NA/v1/projects/app1/rtls/ingress/streamkeys/k1",
        "/us/v1/projects/app1/rtls/ingress/streamkeys/k1",
        "/na/v2/projects/app1/rtls/ingress/streamkeys/k1",
        "/na/v1/projects/app1/rtls/ingress/streamkeys/k1/extra",
        "/",
    ],
)
def test_unknown_region_or_path_is_a_front_gateway_html_404_without_request_id(
    path: str,
) -> None:
    """Unlike the API's "not found": what a client with a wrong base path gets."""
    response = call(make_app(seeded_state("k1")), "GET", path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>404 Not Found</h1>" in response.text
    assert "x-request-id" not in response.headers


def test_wrong_method_on_known_path_is_405() -> None:
    response = call(make_app(seeded_state("k1")), "PUT", key_path("k1"))
    assert response.status_code == 405
    assert response.json()["status"] == "error"


# request IDs and auth -------------------------------------------------------------


def test_request_id_is_echoed() -> None:
    rid = str(uuid.uuid4())
    response = call(make_app(), "GET", key_path("k"), headers={"X-Request-ID": rid})
    assert response.headers["x-request-id"] == rid


def test_request_id_is_generated_when_absent() -> None:
    response = call(make_app(), "GET", key_path("k"))
    assert uuid.UUID(response.headers["x-request-id"]).version == 4


@pytest.mark.parametrize(
    "authorization",
    [
        basic_header(Credentials("test-id", "wrong-secret")),
        basic_header(Credentials("other-id", "test-secret")),
        "Basic not-base64!",
        "Bearer abc",
        "",
    ],
)
def test_bad_basic_auth_is_401_without_request_id(authorization: str) -> None:
    app = make_app(seeded_state("k1"))
    headers = {"Authorization": authorization, "X-Request-ID": str(uuid.uuid4())}
    response = call(app, "DELETE", key_path("k1"), headers=headers)
    assert (response.status_code, response.json()) == (401, AUTH_ERROR)
    assert "x-request-id" not in response.headers
    assert app.emulator.state.get_key("na", APP_ID, "k1") is not None


def test_basic_auth_scheme_is_case_insensitive() -> None:
    header = basic_header(CREDS).replace("Basic", "basic")
    response = call(
        make_app(seeded_state("k1")), "GET", key_path("k1"), headers={"Authorization": header}
    )
    assert response.status_code == 200


def _hmac(method: str, path: str, body: bytes = b"", **kwargs: str) -> dict[str, str]:
    return hmac_headers(CREDS, host="emu.test", method=method, path=path, body=body, **kwargs)


def test_hmac_auth_is_accepted() -> None:
    app = make_app(seeded_state("a/b"))
    path = key_path("a/b")
    response = call(app, "GET", path, headers=_hmac("GET", path))
    assert response.status_code == 200


def test_hmac_behind_a_proxy_is_checked_against_the_signed_host() -> None:
    # A proxy (prism proxy) sends its upstream's Host; the client signed the proxy's.
    path = key_path("a/b")
    signed_for_proxy = hmac_headers(CREDS, host="proxy.test:4010", method="GET", path=path)
    plain = make_app(seeded_state("a/b"))
    assert call(plain, "GET", path, headers=signed_for_proxy).status_code == 401
    behind = make_app(seeded_state("a/b"), signed_host="proxy.test:4010")
    assert call(behind, "GET", path, headers=signed_for_proxy).status_code == 200
    assert call(behind, "GET", path, headers=_hmac("GET", path)).status_code == 401


def test_hmac_auth_signs_the_query_string() -> None:
    app = make_app()
    path = streams_path() + "?channel=c%201"
    assert call(app, "GET", path, headers=_hmac("GET", path)).status_code == 200
    signed_without_query = _hmac("GET", streams_path())
    assert call(app, "GET", path, headers=signed_without_query).status_code == 401


def test_hmac_auth_covers_the_create_body() -> None:
    app = make_app()
    path = "/na/v1/projects/app1/rtls/ingress/streamkeys"
    body = json.dumps({"settings": {"channel": "c", "uid": "1", "expiresAfter": 0}}).encode()
    ok = call(app, "POST", path, content=body, headers=_hmac("POST", path, body))
    assert ok.status_code == 200
    tampered = call(app, "POST", path, content=body + b" ", headers=_hmac("POST", path, body))
    assert tampered.status_code == 401


def test_hmac_with_tampered_path_is_401() -> None:
    app = make_app(seeded_state("k1", "k2"))
    headers = _hmac("DELETE", key_path("k1"))
    response = call(app, "DELETE", key_path("k2"), headers=headers)
    assert (response.status_code, response.json()) == (401, AUTH_ERROR)
    assert "x-request-id" not in response.headers
    assert app.emulator.state.get_key("na", APP_ID, "k2") is not None


def test_hmac_with_wrong_secret_is_401() -> None:
    path = key_path("k1")
    headers = hmac_headers(
        Credentials("test-id", "wrong"), host="emu.test", method="GET", path=path
    )
    assert call(make_app(seeded_state("k1")), "GET", path, headers=headers).status_code == 401


def test_hmac_with_stale_date_is_401() -> None:
    import time

    path = key_path("k1")
    headers = _hmac("GET", path, date=http_date(time.time() - 16 * 60))
    assert call(make_app(seeded_state("k1")), "GET", path, headers=headers).status_code == 401
    fresh = _hmac("GET", path, date=http_date(time.time() - 14 * 60))
    assert call(make_app(seeded_state("k1")), "GET", path, headers=fresh).status_code == 200


def test_hmac_without_date_or_digest_is_401() -> None:
    path = key_path("k1")
    for missing in ("Date", "Digest"):
        headers = _hmac("GET", path)
        del headers[missing]
        response = call(make_app(seeded_state("k1")), "GET", path, headers=headers)
        assert response.status_code == 401


# live streams -----------------------------------------------------------------------


def _streams_state() -> EmulatorState:
    state = seeded_state("live-key", regions=("na",))
    state.add_stream(LiveStream("SID1", APP_ID, "na", "live-key", "room 1", "7", begin_at=100))
    state.add_stream(LiveStream("SID2", APP_ID, "na", "gone-key", "room 2", "8", begin_at=100))
    state.add_stream(LiveStream("SID3", "other-app", "na", "x", "room 1", "9", begin_at=100))
    state.add_stream(LiveStream("SID4", APP_ID, "eu", "y", "room 1", "9", begin_at=100))
    return state


def test_list_online_streams_returns_documented_fields() -> None:
    response = call(make_app(_streams_state()), "GET", streams_path())
    assert response.status_code == 200
    data = response.json()["data"]
    assert sorted(s["sid"] for s in data) == ["SID1", "SID2"]
    first = next(s for s in data if s["sid"] == "SID1")
    assert first == {
        "sid": "SID1",
        "channel": "room 1",
        "uid": "7",
        "url": "rtmp://rtls-ingress-prod-na.agoramdn.com/live/live-key",
        "status": "Running",
        "beginAt": "1970-01-01 00:01:40.000",
        "bitrate": 2500,
        "video": {"width": 1280, "height": 720, "fps": 30},
        "audio": {"channels": 2, "sampleRate": 48000},
    }


def test_list_online_streams_filters_by_channel() -> None:
    response = call(make_app(_streams_state()), "GET", streams_path() + "?channel=room%202")
    assert [s["sid"] for s in response.json()["data"]] == ["SID2"]


def test_disconnect_stream_whose_key_is_deleted_removes_it() -> None:
    app = make_app(_streams_state())
    response = call(app, "DELETE", streams_path(sid="SID2"))
    assert (response.status_code, response.json()) == (200, {"status": "success"})
    assert "SID2" not in app.emulator.state.streams
    assert len(app.emulator.state.list_streams("na", APP_ID)) == 1


def test_disconnect_stream_whose_key_still_exists_reconnects_under_new_sid() -> None:
    app = make_app(_streams_state())
    assert call(app, "DELETE", streams_path(sid="SID1")).status_code == 200
    streams = app.emulator.state.list_streams("na", APP_ID, "room 1")
    assert len(streams) == 1
    assert streams[0].sid != "SID1"
    assert streams[0].stream_key == "live-key"


def test_disconnect_without_reconnect_leaves_no_stream() -> None:
    app = make_app(_streams_state(), reconnect=False)
    assert call(app, "DELETE", streams_path(sid="SID1")).status_code == 200
    assert app.emulator.state.list_streams("na", APP_ID, "room 1") == []


def test_disconnect_unknown_sid_or_other_region_is_404() -> None:
    app = make_app(_streams_state())
    assert call(app, "DELETE", streams_path(sid="NOPE")).json() == NOT_FOUND
    assert call(app, "DELETE", streams_path(sid="SID4")).status_code == 404
    assert "SID4" in app.emulator.state.streams


def test_disconnect_stream_of_another_app_is_403() -> None:
    app = make_app(_streams_state())
    response = call(app, "DELETE", streams_path(sid="SID3"))
    assert response.status_code == 403
    assert response.json()["message"] == "Stream does not belong to this app ID."
    assert "SID3" in app.emulator.state.streams


# forbidden apps, rate limits, faults -------------------------------------------------


def test_forbidden_app_is_403() -> None:
    app = make_app(seeded_state("k1"), forbidden_apps=frozenset({APP_ID}))
    response = call(app, "DELETE", key_path("k1"))
    assert response.status_code == 403
    assert response.json() == {
        "status": "error",
        "message": "Media Gateway is not enabled for this project. Contact us to enable.",
    }
    assert app.emulator.state.get_key("na", APP_ID, "k1") is not None


def test_delete_rate_limit_is_per_app_across_regions_with_retry_after() -> None:
    app = make_app(seeded_state("k1"), delete_rps=4, get_rps=0)

    async def burst(client: httpx.AsyncClient) -> list[httpx.Response]:
        out = []
        for region in ("na", "eu", "ap", "cn", "na"):
            out.append(await client.delete(key_path("zz", region)))
        out.append(await client.get(key_path("k1")))
        out.append(await client.delete(key_path("zz", app_id="app2")))
        return out

    responses = with_client(app, burst)
    assert [r.status_code for r in responses] == [404, 404, 404, 404, 429, 200, 404]
    limited = responses[4]
    assert limited.json() == {"status": "error", "message": "Request rate limit exceeded."}
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["x-request-id"]


def test_get_rate_limit_counts_key_queries_and_stream_lists_together() -> None:
    app = make_app(seeded_state("k1"), get_rps=2)

    async def burst(client: httpx.AsyncClient) -> list[int]:
        return [
            (await client.get(key_path("k1"))).status_code,
            (await client.get(streams_path())).status_code,
            (await client.get(key_path("k1"))).status_code,
        ]

    assert with_client(app, burst) == [200, 200, 429]


def test_rate_limited_delete_leaves_key() -> None:
    app = make_app(seeded_state("k1"), delete_rps=1)

    async def two(client: httpx.AsyncClient) -> list[int]:
        first = await client.delete(key_path("other"))
        second = await client.delete(key_path("k1"))
        return [first.status_code, second.status_code]

    assert with_client(app, two) == [404, 429]
    assert app.emulator.state.get_key("na", APP_ID, "k1") is not None


def test_error_injection_gives_documented_5xx_and_leaves_key() -> None:
    app = make_app(seeded_state("k1"), error_rate=1.0)
    expected = {
        500: "Internal error.",
        502: "Bad gateway.",
        503: "Service unavailable temporarily",
        504: "Gateway timeout",
    }

    async def many(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.delete(key_path("k1")) for _ in range(40)]

    responses = with_client(app, many)
    seen = {r.status_code for r in responses}
    assert seen == set(expected)
    for r in responses:
        assert r.json() == {"status": "error", "message": expected[r.status_code]}
        assert r.headers["x-request-id"]
    assert app.emulator.state.get_key("na", APP_ID, "k1") is not None


def test_throttle_injection_is_429_with_retry_after_1() -> None:
    app = make_app(seeded_state("k1"), throttle_rate=1.0)
    response = call(app, "DELETE", key_path("k1"))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert app.emulator.state.get_key("na", APP_ID, "k1") is not None


def test_reset_injection_without_transport_raises_and_leaves_key() -> None:
    app = make_app(seeded_state("k1"), reset_rate=1.0)
    with pytest.raises(ConnectionReset):
        call(app, "DELETE", key_path("k1"))
    assert app.emulator.state.get_key("na", APP_ID, "k1") is not None


def test_fault_rates_are_roughly_respected_with_a_seed() -> None:
    app = make_app(error_rate=0.3, seed=42)

    async def many(client: httpx.AsyncClient) -> int:
        return sum([(await client.get(key_path("k"))).status_code >= 500 for _ in range(400)])

    assert 80 <= with_client(app, many) <= 160


def test_auth_is_checked_before_faults() -> None:
    app = make_app(error_rate=1.0)
    headers = {"Authorization": basic_header(Credentials("x", "y"))}
    assert call(app, "GET", key_path("k"), headers=headers).status_code == 401


# journal and admin endpoints --------------------------------------------------------


def test_journal_has_one_line_per_request(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    app = make_app(seeded_state("a/b"), journal=journal, delete_rps=1)
    rid = str(uuid.uuid4())

    async def requests(client: httpx.AsyncClient) -> None:
        await client.delete(key_path("a/b"), headers={"X-Request-ID": rid})
        await client.delete(key_path("a/b"))
        await client.get(key_path("a/b"), headers={"Authorization": "Basic eDp5"})

    with_client(app, requests)
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert len(lines) == 3
    first, second, third = lines
    assert first["method"] == "DELETE"
    assert first["path"] == "/na/v1/projects/app1/rtls/ingress/streamkeys/a%2Fb"
    assert (first["region"], first["app_id"], first["key"]) == ("na", APP_ID, "a/b")
    assert (first["request_id"], first["response_request_id"]) == (rid, rid)
    assert (first["status"], first["fault"]) == (200, None)
    assert first["ts"].endswith("+00:00")
    assert (second["status"], second["fault"], second["request_id"]) == (429, "rate_limit", None)
    assert uuid.UUID(second["response_request_id"])
    assert (third["status"], third["fault"], third["response_request_id"]) == (401, "auth", None)


def test_journal_records_reset_with_null_status(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    app = make_app(journal=journal, reset_rate=1.0)
    with pytest.raises(ConnectionReset):
        call(app, "GET", key_path("k"))
    (line,) = journal.read_text().splitlines()
    assert json.loads(line)["status"] is None
    assert json.loads(line)["fault"] == "reset"


def test_admin_state_lists_keys_and_streams_without_auth() -> None:
    app = make_app(_streams_state())
    response = call(app, "GET", "/_emulator/state", headers={"Authorization": ""})
    assert response.status_code == 200
    body = response.json()
    assert body["keys"] == [
        {
            "region": "na",
            "app_id": APP_ID,
            "key": "live-key",
            "channel": "chan",
            "uid": "1001",
            "expiresAfter": 0,
            "createdAt": "1686820170",
        }
    ]
    assert {(s["sid"], s["app_id"], s["region"], s["stream_key"]) for s in body["streams"]} == {
        ("SID1", APP_ID, "na", "live-key"),
        ("SID2", APP_ID, "na", "gone-key"),
        ("SID3", "other-app", "na", "x"),
        ("SID4", APP_ID, "eu", "y"),
    }


def test_admin_stats_counts_requests_per_method_and_status() -> None:
    app = make_app(seeded_state("k1"))

    async def requests(client: httpx.AsyncClient) -> dict[str, object]:
        await client.get(key_path("k1"))
        await client.get(key_path("zz"))
        await client.delete(key_path("k1"))
        await client.delete(key_path("k1"), headers={"Authorization": "Basic eDp5"})
        return (await client.get("/_emulator/stats")).json()  # type: ignore[no-any-return]

    stats = with_client(app, requests)
    assert stats["total"] == 4
    assert stats["by_method_status"] == {
        "DELETE": {"200": 1, "401": 1},
        "GET": {"200": 1, "404": 1},
    }
    assert stats["faults"] == {"auth": 1}


def test_the_default_rate_limit_algorithm_is_the_sliding_window() -> None:
    app = make_app(seeded_state("k1"), delete_rps=2)
    assert app.emulator.limiter.algorithm.__name__ == "SlidingWindow"
    assert make_app(rate_limit_algorithm="fixed-window").emulator.limiter.algorithm.__name__ == (
        "FixedWindow"
    )


def test_jitter_delays_each_request_by_a_random_0_to_n_ms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import revoker.emulator.app as app_module

    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(app_module.asyncio, "sleep", fake_sleep)
    app = make_app(seeded_state("k1"), jitter_ms=50, latency_ms=10)

    async def many(client: httpx.AsyncClient) -> list[int]:
        return [(await client.get(key_path("k1"))).status_code for _ in range(20)]

    assert with_client(app, many) == [200] * 20
    assert len(delays) == 20
    assert all(0.010 <= d <= 0.060 for d in delays)
    assert len(set(delays)) > 10, "each request draws its own delay"


def test_create_rate_limit_is_its_own_budget_and_a_limited_create_makes_no_key() -> None:
    app = make_app(seeded_state("k1"), create_rps=2, delete_rps=2)
    body = {"settings": {"channel": "c", "uid": "1", "expiresAfter": 0}}
    create = key_path("", "na").rstrip("/")

    async def burst(client: httpx.AsyncClient) -> list[int]:
        out = [(await client.post(create, json=body)).status_code for _ in range(3)]
        out.append((await client.delete(key_path("k1"))).status_code)
        return out

    assert with_client(app, burst) == [200, 200, 429, 200]
    assert app.emulator.state.key_count() == 1 + 2  # k1 in eu, plus the two created


def test_faults_can_be_limited_to_one_method() -> None:
    app = make_app(seeded_state("k1"), error_rate=1.0, fault_methods=frozenset({"DELETE"}))

    async def both(client: httpx.AsyncClient) -> list[int]:
        return [
            (await client.get(key_path("k1"))).status_code,
            (await client.delete(key_path("k1"))).status_code,
        ]

    get_status, delete_status = with_client(app, both)
    assert get_status == 200
    assert delete_status >= 500
    assert app.emulator.state.get_key("na", APP_ID, "k1") is not None
