"""``revoker rotate`` in-process (CliRunner) against a respx-mocked API: one pair at a time."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner, Result

from revoker.audit.log import AuditLog
from revoker.cli import main
from revoker.engine.jobs.newkeys import HEADER
from revoker.models import key_id
from tests.conftest import APP, BASE, NO_ECHO, api_not_found

pytestmark = pytest.mark.usefixtures("creds")

KEY = "leaked-key-0001-abcdef"
NEW = "NEWKEY-very-secret-0001"
KEY_URL = f"/na/v1/projects/{APP}/rtls/ingress/streamkeys/{KEY}"
CREATE_URL = f"/na/v1/projects/{APP}/rtls/ingress/streamkeys"
DATA = {"channel": "news", "uid": "1001", "expiresAfter": 0, "createdAt": "1686820170"}
COLLISION = {"status": "error", "message": "Streaming key exists in region:na."}


def rotate(tmp_path: Path, *args: str, new_keys: bool = True) -> Result:
    out = ["--new-keys-file", str(tmp_path / "new.csv")] if new_keys else []
    return CliRunner().invoke(
        main,
        [
            "--log-format",
            "json",
            "rotate",
            "--base-url",
            BASE,
            "--audit-log",
            str(tmp_path / "audit.jsonl"),
            "--max-rps",
            "0",
            "--regions",
            "na",
            "--app-id",
            APP,
            "--key",
            KEY,
            "--output",
            "json",
            *out,
            *args,
        ],
        catch_exceptions=False,
    )


def present(api: respx.MockRouter) -> None:
    api.get(KEY_URL).respond(200, json={"status": "success", "data": DATA})
    api.delete(KEY_URL).respond(200, json={"status": "success"})


def created(key: str = NEW) -> httpx.Response:
    return httpx.Response(
        200, json={"status": "success", "data": {**DATA, "streamKey": key, "expiresAfter": 60}}
    )


def result_line(tmp_path: Path) -> dict[str, Any]:
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [r for r in records if r["event"] == "rotate" and r.get("phase") == "result"][-1]


def test_the_replacement_is_created_with_the_old_channel_uid_and_the_new_validity(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    present(api)
    create = api.post(CREATE_URL).mock(return_value=created())
    done = rotate(tmp_path, "--expires-after", "60")
    assert done.exit_code == 0, done.output
    body = json.loads(create.calls.last.request.content)
    assert body == {"settings": {"channel": "news", "uid": "1001", "expiresAfter": 60}}
    row = (tmp_path / "new.csv").read_text().splitlines()
    assert row == [",".join(HEADER), f"{APP},na,news,1001,{key_id(KEY)},{NEW},60"]
    record = result_line(tmp_path)
    assert record["outcome"] == "rotated"
    assert record["new_key_id"] == key_id(NEW)
    assert NEW not in done.output
    assert NEW not in (tmp_path / "audit.jsonl").read_text()


def test_a_key_collision_is_retried_with_a_new_create(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    present(api)
    create = api.post(CREATE_URL).mock(
        side_effect=[httpx.Response(400, json=COLLISION), httpx.Response(400, json=COLLISION),
                     created()]
    )  # fmt: skip
    assert rotate(tmp_path).exit_code == 0
    assert create.call_count == 3
    assert len(result_line(tmp_path)["create"]["attempts"]) == 3


def test_collisions_stop_after_a_few_creates_and_say_no_replacement_was_issued(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    present(api)
    create = api.post(CREATE_URL).respond(400, json=COLLISION)
    done = rotate(tmp_path)
    assert done.exit_code == 1
    assert create.call_count == 4
    record = result_line(tmp_path)
    assert record["outcome"] == "failed"
    assert record["message"].startswith("old key already deleted, no replacement issued")


@pytest.mark.parametrize("status", [500, 504])
def test_a_5xx_create_is_unknown_and_never_sent_again(
    tmp_path: Path, api: respx.MockRouter, status: int
) -> None:
    present(api)
    create = api.post(CREATE_URL).respond(status, json={"status": "error", "message": "x"})
    done = rotate(tmp_path)
    assert done.exit_code == 1
    assert create.call_count == 1
    assert result_line(tmp_path)["outcome"] == "unknown"
    assert json.loads(done.stdout)["rotate"]["counts"] == {
        "absent": 0,
        "failed": 0,
        "not_attempted": 0,
        "rotated": 0,
        "unknown": 1,
    }


def test_a_create_answered_200_by_something_other_than_the_api_is_unknown_not_rotated(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    """A proxy's 200 (no echoed X-Request-ID) hands out no key: the create may or may
    not have reached the API, so a human looks and nothing is created again."""
    present(api)
    body = {"status": "success", "data": {"streamKey": "made-up-by-a-proxy-0001"}}
    create = api.post(CREATE_URL).respond(200, json=body, headers=NO_ECHO)
    done = rotate(tmp_path)
    assert done.exit_code == 1
    assert create.call_count == 1
    assert result_line(tmp_path)["outcome"] == "unknown"
    assert "made-up-by-a-proxy" not in (tmp_path / "new.csv").read_text()


def test_each_intent_line_is_on_disk_before_its_delete_and_its_create(
    tmp_path: Path, api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    fsync = AuditLog.sync

    def sync(self: AuditLog) -> None:
        last = json.loads(self.path.read_text().splitlines()[-1])
        order.append(f"fsync {last.get('phase')} intent")
        fsync(self)

    def answer(response: httpx.Response) -> Any:
        def respond(request: httpx.Request) -> httpx.Response:
            order.append(request.method)
            return response

        return respond

    monkeypatch.setattr(AuditLog, "sync", sync)
    api.get(KEY_URL).respond(200, json={"status": "success", "data": DATA})
    api.delete(KEY_URL).mock(side_effect=answer(httpx.Response(200, json={"status": "success"})))
    api.post(CREATE_URL).mock(side_effect=answer(created()))
    assert rotate(tmp_path).exit_code == 0
    assert order == ["fsync delete intent", "DELETE", "fsync create intent", "POST"]


def test_a_lost_create_answer_is_unknown_and_never_sent_again(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    present(api)
    create = api.post(CREATE_URL).mock(side_effect=httpx.ReadTimeout("lost"))
    assert rotate(tmp_path).exit_code == 1
    assert create.call_count == 1
    assert result_line(tmp_path)["outcome"] == "unknown"


def test_a_throttled_create_is_retried(tmp_path: Path, api: respx.MockRouter) -> None:
    present(api)
    throttled = httpx.Response(429, json={"status": "error"}, headers={"Retry-After": "0"})
    create = api.post(CREATE_URL).mock(side_effect=[throttled, created()])
    assert rotate(tmp_path).exit_code == 0
    assert create.call_count == 2


def test_a_key_not_stored_is_still_deleted_and_nothing_is_created(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    api.get(KEY_URL).mock(side_effect=api_not_found)
    delete = api.delete(KEY_URL).mock(side_effect=api_not_found)
    create = api.post(CREATE_URL).mock(return_value=created())
    result = rotate(tmp_path)
    assert result.exit_code == 1  # found nowhere: nothing was rotated
    assert "NOT FOUND" in result.stdout
    assert delete.call_count == 1
    assert create.call_count == 0
    assert result_line(tmp_path)["outcome"] == "absent"
    (tmp_path / "new.csv").unlink()
    assert rotate(tmp_path, "--absent-ok").exit_code == 0


def test_a_script_generated_key_deleted_without_being_stored_is_revoked_not_rotated(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    api.get(KEY_URL).mock(side_effect=api_not_found)
    api.delete(KEY_URL).mock(return_value=httpx.Response(200, json={"status": "success"}))
    create = api.post(CREATE_URL).mock(return_value=created())
    result = rotate(tmp_path)
    assert result.exit_code == 0, result.output
    assert create.call_count == 0
    assert "every key rotated or revoked" in result.stdout


def test_a_failed_query_deletes_nothing(tmp_path: Path, api: respx.MockRouter) -> None:
    api.get(KEY_URL).respond(403, json={"status": "error", "message": "not enabled"})
    delete = api.delete(KEY_URL).respond(200, json={"status": "success"})
    assert rotate(tmp_path).exit_code == 1
    assert delete.call_count == 0


def write_audit(tmp_path: Path, *records: dict[str, Any]) -> None:
    base = {"ts": "2026-01-01T00:00:00.000Z", "run_id": "earlier", "app_id": APP,
            "region": "na", "key_id": key_id(KEY), "key_hint": "leak...def"}  # fmt: skip
    lines = [json.dumps({**base, "event": "rotate", **r}) for r in records]
    (tmp_path / "audit.jsonl").write_text("\n".join(lines) + "\n")


SETTINGS = {"channel": "news", "uid": "1001", "expires_after": 0}


def test_resume_after_a_create_intent_reports_unknown_without_any_request(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    write_audit(tmp_path, {"phase": "delete", "outcome": "failed", **SETTINGS},
                {"phase": "create", "outcome": "unknown", **SETTINGS})  # fmt: skip
    done = rotate(tmp_path, "--resume")
    assert done.exit_code == 1
    assert len(api.calls) == 0
    assert result_line(tmp_path)["outcome"] == "unknown"


def test_resume_after_a_delete_intent_creates_from_the_recorded_settings(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    write_audit(tmp_path, {"phase": "delete", "outcome": "failed", **SETTINGS})
    api.get(KEY_URL).mock(side_effect=api_not_found)  # the killed run's DELETE went through
    create = api.post(CREATE_URL).mock(return_value=created())
    assert rotate(tmp_path, "--resume").exit_code == 0
    assert json.loads(create.calls.last.request.content)["settings"]["channel"] == "news"
    assert result_line(tmp_path)["outcome"] == "rotated"


def test_resume_after_a_failed_delete_that_went_through_issues_the_replacement(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    """Every DELETE attempt timed out, yet one reached Agora: the key is gone. The
    resumed run must issue the replacement, not call the pair absent."""
    write_audit(
        tmp_path,
        {"phase": "delete", "outcome": "failed", **SETTINGS},
        {"phase": "result", "outcome": "failed", "message": "DELETE failed (no response)"},
    )
    api.get(KEY_URL).mock(side_effect=api_not_found)
    create = api.post(CREATE_URL).mock(return_value=created())
    assert rotate(tmp_path, "--resume").exit_code == 0
    assert json.loads(create.calls.last.request.content)["settings"]["uid"] == "1001"
    assert result_line(tmp_path)["outcome"] == "rotated"


def test_a_rerun_without_resume_keeps_a_pair_left_unknown_unknown_without_any_request(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    """The old key is gone after an unknown create: a rerun that forgot --resume must not
    call the pair absent (exit 0, report "all done") and so lose a replacement that may
    exist on the server."""
    write_audit(
        tmp_path,
        {"phase": "delete", "outcome": "failed", **SETTINGS},
        {"phase": "create", "outcome": "unknown", **SETTINGS},
        {"phase": "result", "outcome": "unknown", "old_key_deleted": True, **SETTINGS},
    )
    api.get(KEY_URL).mock(side_effect=api_not_found)
    api.delete(KEY_URL).mock(side_effect=api_not_found)
    done = rotate(tmp_path)
    assert done.exit_code == 1
    assert len(api.calls) == 0
    assert result_line(tmp_path)["outcome"] == "unknown"


def test_a_rerun_without_resume_issues_the_replacement_an_earlier_run_could_not(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    write_audit(
        tmp_path,
        {"phase": "delete", "outcome": "failed", **SETTINGS},
        {"phase": "result", "outcome": "failed", "old_key_deleted": True, **SETTINGS},
    )
    api.get(KEY_URL).mock(side_effect=api_not_found)
    create = api.post(CREATE_URL).mock(return_value=created())
    assert rotate(tmp_path).exit_code == 0
    assert create.call_count == 1
    assert result_line(tmp_path)["outcome"] == "rotated"


def test_a_resume_whose_query_failed_leaves_the_replacement_to_the_next_resume(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    """A killed run deleted the key; the first --resume cannot query it (5xx, network):
    the second --resume must still issue the replacement, not call the pair absent."""
    write_audit(tmp_path, {"phase": "delete", "outcome": "failed", **SETTINGS})
    api.get(KEY_URL).respond(503, json={"status": "error", "message": "busy"})
    assert rotate(tmp_path, "--resume", "--max-attempts", "1").exit_code == 1
    message = result_line(tmp_path)["message"]
    assert "may already have deleted the old key" in message, message
    assert "nothing deleted" not in message
    api.get(KEY_URL).mock(side_effect=api_not_found)
    delete = api.delete(KEY_URL).mock(side_effect=api_not_found)
    create = api.post(CREATE_URL).mock(return_value=created())
    second = rotate(tmp_path, "--resume", "--append")
    assert second.exit_code == 0, second.output
    assert (delete.call_count, create.call_count) == (0, 1)
    assert result_line(tmp_path)["outcome"] == "rotated"


@pytest.mark.parametrize("state", ["delete", "create"])
def test_a_not_attempted_line_from_a_halted_resume_keeps_what_the_earlier_run_left(
    tmp_path: Path, api: respx.MockRouter, state: str
) -> None:
    """A resume halted (Ctrl-C, 401) as it took the pair writes a bare not_attempted
    line: the old key deleted (or a create maybe made) earlier must not be forgotten."""
    intents = [{"phase": "delete", "outcome": "failed", **SETTINGS}]
    if state == "create":
        intents.append({"phase": "create", "outcome": "unknown", **SETTINGS})
    write_audit(tmp_path, *intents, {"outcome": "not_attempted", "message": "interrupted"})
    api.get(KEY_URL).mock(side_effect=api_not_found)
    delete = api.delete(KEY_URL).mock(side_effect=api_not_found)
    create = api.post(CREATE_URL).mock(return_value=created())
    done = rotate(tmp_path, "--resume")
    assert delete.call_count == 0
    if state == "delete":
        assert (done.exit_code, create.call_count) == (0, 1)
        assert result_line(tmp_path)["outcome"] == "rotated"
    else:
        assert (done.exit_code, len(api.calls)) == (1, 0)
        assert result_line(tmp_path)["outcome"] == "unknown"


def test_resume_skips_pairs_already_rotated(tmp_path: Path, api: respx.MockRouter) -> None:
    write_audit(tmp_path, {"phase": "result", "outcome": "rotated", **SETTINGS})
    done = rotate(tmp_path, "--resume")
    assert done.exit_code == 0
    assert len(api.calls) == 0


def test_without_new_keys_file_rotate_exits_2_and_sends_nothing(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    done = rotate(tmp_path, new_keys=False)
    assert done.exit_code == 2
    assert "--new-keys-file" in done.output
    assert len(api.calls) == 0


def test_an_existing_new_keys_file_is_refused_unless_appending(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    path = tmp_path / "new.csv"
    path.write_text(",".join(HEADER) + "\n")
    path.chmod(0o600)
    done = rotate(tmp_path)
    assert done.exit_code == 2
    assert "already exists" in done.output
    assert len(api.calls) == 0
    assert not (tmp_path / "audit.jsonl").exists(), "refused before the audit log is touched"
    present(api)
    api.post(CREATE_URL).mock(return_value=created())
    assert rotate(tmp_path, "--append").exit_code == 0
    assert len(path.read_text().splitlines()) == 2


def test_a_run_refused_the_audit_log_lock_leaves_no_new_keys_file_behind(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    running = AuditLog.open(tmp_path / "audit.jsonl", "another-run")
    try:
        done = rotate(tmp_path)
    finally:
        running.close()
    assert done.exit_code == 2
    assert "another revoker run is writing this audit log" in done.output
    assert len(api.calls) == 0
    assert not (tmp_path / "new.csv").exists()
    present(api)
    api.post(CREATE_URL).mock(return_value=created())
    assert rotate(tmp_path).exit_code == 0  # the same paths, without --append
    assert len((tmp_path / "new.csv").read_text().splitlines()) == 2


def test_a_symlinked_new_keys_file_is_refused(tmp_path: Path, api: respx.MockRouter) -> None:
    target = tmp_path / "elsewhere.csv"
    (tmp_path / "new.csv").symlink_to(target)
    for extra in ((), ("--append",)):
        done = rotate(tmp_path, *extra)
        assert done.exit_code == 2
        assert not target.exists()
    assert len(api.calls) == 0


def test_the_new_keys_file_is_created_0600(tmp_path: Path, api: respx.MockRouter) -> None:
    present(api)
    api.post(CREATE_URL).mock(return_value=created())
    old = os.umask(0)
    try:
        assert rotate(tmp_path).exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o600


STREAMS_URL = f"/na/v1/projects/{APP}/rtls/ingress/online-streams"
KEY2 = "leaked-key-0002-abcdef"
KEY2_URL = f"/na/v1/projects/{APP}/rtls/ingress/streamkeys/{KEY2}"


def live(sid: str, url: str, uid: str = "1001") -> dict[str, Any]:
    return {"sid": sid, "channel": "news", "uid": uid, "url": url}


def cut_and_gone(api: respx.MockRouter, sid: str) -> respx.Route:
    api.get(f"{STREAMS_URL}/{sid}").mock(side_effect=api_not_found)
    return api.delete(f"{STREAMS_URL}/{sid}").respond(200, json={"status": "success"})


def test_disconnect_cuts_the_old_keys_streams_after_its_delete_with_one_lookup(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    lookup = api.get(KEY_URL).respond(200, json={"status": "success", "data": DATA})
    api.delete(KEY_URL).respond(200, json={"status": "success"})
    api.post(CREATE_URL).mock(return_value=created())
    streams = [
        live("S1", f"rtmp://x/live/{KEY}"),
        live("W1", "https://whip.example.com/whip"),  # the key's channel and uid
        live("X1", f"rtmp://x/live/{KEY}x"),  # a look-alike key
        live("X2", "https://whip.example.com/whip", uid="1002"),
    ]
    listing = api.get(STREAMS_URL).respond(200, json={"status": "success", "data": streams})
    cuts = {sid: cut_and_gone(api, sid) for sid in ("S1", "W1", "X1", "X2")}
    done = rotate(tmp_path, "--disconnect")
    assert done.exit_code == 0, done.output
    assert lookup.call_count == 1  # rotate's own lookup is the sweep's
    assert listing.call_count == 2  # before the DELETE, and after the region's last one
    assert {sid for sid, route in cuts.items() if route.called} == {"S1", "W1"}
    order = [(c.request.method, c.request.url.path) for c in api.calls]
    deleted = order.index(("DELETE", KEY_URL))
    assert (
        deleted < order.index(("POST", CREATE_URL)) < order.index(("DELETE", f"{STREAMS_URL}/S1"))
    )
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    lines = {r["sid"]: r for r in records if r["event"] == "disconnect"}
    assert {sid: r["outcome"] for sid, r in lines.items()} == {
        "S1": "disconnected",
        "W1": "disconnected",
    }
    assert (lines["S1"]["match"], lines["W1"]["match"]) == ("url", "channel_uid")
    assert [r["event"] for r in records].index("disconnect") > records.index(result_line(tmp_path))
    assert "live streams cut off: 2" in done.output
    assert NEW not in done.output + (tmp_path / "audit.jsonl").read_text()


@pytest.mark.parametrize("failure", ["lookup", "delete"])
def test_disconnect_lists_again_after_the_last_delete_even_if_a_pair_ends_early(
    tmp_path: Path, api: respx.MockRouter, failure: str
) -> None:
    present(api)
    api.post(CREATE_URL).mock(return_value=created())
    refused = httpx.Response(403, json={"status": "error", "message": "no"})
    if failure == "lookup":
        api.get(KEY2_URL).mock(return_value=refused)
    else:
        api.get(KEY2_URL).respond(200, json={"status": "success", "data": DATA})
        api.delete(KEY2_URL).mock(return_value=refused)
    late = live("LATE", f"rtmp://x/live/{KEY}")  # started while the keys were being deleted
    api.get(STREAMS_URL).mock(
        side_effect=[
            httpx.Response(
                200, json={"status": "success", "data": [live("K2", f"rtmp://x/live/{KEY2}")]}
            ),
            httpx.Response(200, json={"status": "success", "data": [late]}),
        ]
    )
    cut_late, cut_k2 = cut_and_gone(api, "LATE"), cut_and_gone(api, "K2")
    done = rotate(tmp_path, "--disconnect", "--max-attempts", "1", "--key", KEY2)
    assert done.exit_code == 1  # KEY2 was not rotated
    assert cut_late.called  # the listing after the last DELETE happened
    assert not cut_k2.called  # KEY2 was never deleted: its stream is left alone


def test_resume_with_disconnect_cuts_streams_of_a_key_an_earlier_run_deleted(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    write_audit(tmp_path, {"phase": "delete", "outcome": "failed", **SETTINGS})
    api.get(KEY_URL).mock(side_effect=api_not_found)  # the killed run's DELETE went through
    api.post(CREATE_URL).mock(return_value=created())
    streams = [live("S1", f"rtmp://x/live/{KEY}"), live("W1", "https://whip.example.com/whip")]
    api.get(STREAMS_URL).respond(200, json={"status": "success", "data": streams})
    cuts = [cut_and_gone(api, sid) for sid in ("S1", "W1")]
    assert rotate(tmp_path, "--resume", "--disconnect").exit_code == 0
    assert all(route.call_count == 1 for route in cuts)


def test_disconnect_sends_nothing_for_a_pair_left_unknown(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    write_audit(tmp_path, {"phase": "create", "outcome": "unknown", **SETTINGS})
    assert rotate(tmp_path, "--resume", "--disconnect").exit_code == 1
    assert len(api.calls) == 0


@pytest.mark.parametrize("how", ["same path", "hard link", "symbolic link", "dot-dot"])
def test_the_new_keys_file_may_not_be_the_audit_log_by_any_name(
    tmp_path: Path, api: respx.MockRouter, how: str
) -> None:
    audit = tmp_path / "audit.jsonl"
    AuditLog.open(audit, "earlier-run").close()
    before = audit.read_bytes()
    name = {
        "same path": audit,
        "hard link": tmp_path / "hard.csv",
        "symbolic link": tmp_path / "soft.csv",
        "dot-dot": tmp_path / "sub" / ".." / "audit.jsonl",
    }[how]
    if how == "hard link":
        os.link(audit, name)
    elif how == "symbolic link":
        name.symlink_to(audit)
    elif how == "dot-dot":
        (tmp_path / "sub").mkdir()
    done = rotate(tmp_path, "--append", "--new-keys-file", str(name))
    assert done.exit_code == 2, done.output
    assert "the new-keys file is the audit log" in done.output
    assert len(api.calls) == 0
    assert audit.read_bytes() == before


def test_the_new_keys_file_may_not_be_an_input_file(tmp_path: Path, api: respx.MockRouter) -> None:
    keys = tmp_path / "keys.csv"
    keys.write_text(f"{KEY}\n")
    done = rotate(tmp_path, str(keys), "--append", "--new-keys-file", str(keys))
    assert done.exit_code == 2, done.output
    assert "also an input file" in done.output
    assert len(api.calls) == 0


@pytest.mark.parametrize(
    "answer", [KEY, "leaked-key-0002-abcdef", "NEWK****0001", "NEW\x07KEY-0001", "NEW KEY 01"]
)
def test_a_create_answering_a_leaked_masked_or_implausible_key_is_unknown_never_handed_over(
    tmp_path: Path, api: respx.MockRouter, answer: str
) -> None:
    present(api)
    other = "leaked-key-0002-abcdef"  # the other leaked key of the run
    api.get(f"/na/v1/projects/{APP}/rtls/ingress/streamkeys/{other}").respond(
        200, json={"status": "success", "data": DATA}
    )
    api.delete(f"/na/v1/projects/{APP}/rtls/ingress/streamkeys/{other}").respond(
        200, json={"status": "success"}
    )
    api.post(CREATE_URL).mock(return_value=created(answer))
    done = rotate(tmp_path, "--key", other, "--concurrency", "1")
    assert done.exit_code == 1, done.output
    records = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    results = [r for r in records if r["event"] == "rotate" and r.get("phase") == "result"]
    assert {r["outcome"] for r in results} == {"unknown"}
    assert (tmp_path / "new.csv").read_text().splitlines() == [",".join(HEADER)]
    assert all("not a new key: never handed to the owner" in r["message"] for r in results)
    assert answer not in done.output


def test_append_to_a_new_keys_file_with_a_torn_last_row_exits_2_and_sends_nothing(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    path = tmp_path / "new.csv"
    torn = f"{APP},na,news,1001,{key_id(KEY)},NEWKEY-cut-sh"
    path.write_text(",".join(HEADER) + "\n" + torn)
    path.chmod(0o600)
    done = rotate(tmp_path, "--append", "--resume")
    assert done.exit_code == 2, done.output
    assert "new.csv:2: the last row is torn" in done.output
    assert len(api.calls) == 0
    assert path.read_text().endswith(torn)


def test_apps_grouped_in_the_input_rotate_side_by_side_each_in_its_key_order(
    tmp_path: Path, api: respx.MockRouter
) -> None:
    # Each app ID has its own budgets: with two workers and the input sorted by app,
    # the second app's keys start before the first app's are done, yet each app's
    # keys go in input order.
    apps = ("appAAAA", "appBBBB")
    keys = {app: [f"{app}-leaked-key-{n:04d}" for n in range(6)] for app in apps}
    csv = tmp_path / "keys.csv"
    csv.write_text(
        "stream_key,app_id,regions\n"
        + "".join(f"{key},{app},na\n" for app in apps for key in keys[app])
    )
    deleted: list[tuple[str, str]] = []
    made = iter(range(1000))

    def delete(request: httpx.Request) -> httpx.Response:
        parts = request.url.path.split("/")
        deleted.append((parts[4], parts[-1]))
        return httpx.Response(200, json={"status": "success"})

    api.get(url__regex=r".*/online-streams$").respond(200, json={"status": "success", "data": []})
    api.get(url__regex=r".*/streamkeys/.+").respond(200, json={"status": "success", "data": DATA})
    api.delete(url__regex=r".*/streamkeys/.+").mock(side_effect=delete)
    api.post(url__regex=r".*/streamkeys$").mock(
        side_effect=lambda _: created(f"NEWKEY-very-secret-{next(made):04d}")
    )
    result = CliRunner().invoke(
        main,
        ["rotate", str(csv), "--base-url", BASE, "--audit-log", str(tmp_path / "audit.jsonl"),
         "--new-keys-file", str(tmp_path / "new.csv"), "--max-rps", "20", "--concurrency", "2",
         "--output", "json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert json.loads(result.stdout)["exit_code"] == 0, result.stdout
    assert len(deleted) == 12
    first_b = next(i for i, (app, _) in enumerate(deleted) if app == "appBBBB")
    last_a = max(i for i, (app, _) in enumerate(deleted) if app == "appAAAA")
    assert first_b < 4 < last_a  # in input order, appBBBB would start only after appAAAA
    for app in apps:
        assert [key for owner, key in deleted if owner == app] == keys[app]


def test_a_refused_intent_line_sends_no_delete_and_no_create_and_halts_the_run(
    tmp_path: Path, api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from revoker.errors import AuditWriteError

    present(api)
    create = api.post(CREATE_URL).mock(return_value=created())
    real = AuditLog.task

    def refuse_intents(self: AuditLog, event: str, result: Any, **extra: Any) -> None:
        if extra.get("phase") in ("delete", "create"):
            raise AuditWriteError("disk full")
        real(self, event, result, **extra)

    monkeypatch.setattr(AuditLog, "task", refuse_intents)
    done = rotate(tmp_path)
    assert done.exit_code == 1, done.output
    assert not [call for call in api.calls if call.request.method == "DELETE"]
    assert create.call_count == 0
    assert "audit log write failed" in done.output
    summary = json.loads(done.stdout)
    assert summary["halt_reason"] == "audit_write_failed"
