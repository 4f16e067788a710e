"""Gateway keys: the key file, authentication, the caller it yields, reload, `extproc keys`, and what
a caller may see (/v1/models) or touch (/v1/feedback)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from extproc import errors
from extproc.accounting import UsageRecord
from extproc.cli import main
from extproc.config import load, parse
from extproc.devstack import DEFAULT_ROUTING, DEMO_KEYS
from extproc.errors import UnsupportedFeature
from extproc.gateway import Gateway
from extproc.keys import (KeyEntry, KeyFile, KeyFileError, PermissionDenied, authenticate, digest, new_key,
                          parse_keys, presented_key, without)
from extproc.ledger import open_ledger
from extproc.policy import decide, refusal

SHA_A = digest("sk-a")
BASE = {
    "providers": {"a": {"api": "openai"}},
    "models": {"m": {"provider": "a"}, "premium": {"provider": "a", "quality": 5}},
    "routing": {"default_model": "m"},
    "surfaces": {"bot": {"quality_floor": 4}, "cheap": {"deny": ["premium"]}},
    "tenants": {"acme": {"surface": "cheap"}, "inline": {"api_keys_sha256": [digest("sk-inline")]}},
}


def cfg(**top):
    return parse({**BASE, **top}, source="t.yaml")


def entries(*lines: str):
    return parse_keys("keys:\n" + "".join(f"  - {line}\n" for line in lines))


def test_key_file_entries_and_their_errors():
    got = entries(f"{{id: a1, tenant: acme, sha256: {SHA_A}, surfaces: [cheap], requests_per_minute: 5}}",
                  f"{{tenant: acme, sha256: {digest('sk-b')}}}")
    assert got[SHA_A].id == "a1" and got[SHA_A].surfaces == {"cheap"} and got[SHA_A].requests_per_minute == 5
    assert got[digest("sk-b")].id == digest("sk-b")[:12]            # default id: the hash's first 12 digits
    assert parse_keys("") == {} and parse_keys("keys:\n") == {}
    for bad, match in [(f"{{tenant: acme, sha256: {SHA_A.upper()}}}", r"keys\[0\].sha256: must be the lowercase"),
                       ("{tenant: acme, sha256: sk-a}", "never the key itself"),
                       (f"{{sha256: {SHA_A}}}", r"keys\[0\].tenant"),
                       (f"{{tenant: acme, sha256: {SHA_A}, rpm: 3}}", r"keys\[0\].rpm: unknown key"),
                       (f"{{tenant: acme, sha256: {SHA_A}, requests_per_minute: 0}}", "whole number >= 1")]:
        with pytest.raises(KeyFileError, match=match):
            entries(bad)
    with pytest.raises(KeyFileError, match="listed twice"):
        entries(f"{{tenant: acme, sha256: {SHA_A}}}", f"{{tenant: acme, sha256: {SHA_A}}}")


def test_the_key_arrives_as_bearer_or_x_api_key():
    assert presented_key({"authorization": "Bearer sk-a"}) == "sk-a"
    assert presented_key({"authorization": "bearer  sk-a "}) == "sk-a"
    assert presented_key({"x-api-key": "sk-a"}) == "sk-a"
    assert presented_key({"authorization": "Bearer sk-a", "x-api-key": "sk-a"}) == "sk-a"
    assert presented_key({}) is None
    for headers in ({"authorization": "Basic abc"}, {"authorization": "Bearer "},
                    {"authorization": "Bearer sk-a", "x-api-key": "sk-b"}):
        with pytest.raises(errors.Unauthorized):
            presented_key(headers)


def test_required_auth_refuses_a_missing_or_unknown_key_and_names_the_tenant_of_a_known_one():
    c = cfg()
    keys = entries(f"{{id: a1, tenant: acme, sha256: {SHA_A}}}")
    for headers in ({}, {"authorization": "Bearer sk-wrong"}, {"x-llm-tenant": "acme"}):
        with pytest.raises(errors.Unauthorized) as exc:
            authenticate(c, headers, keys)
        assert (exc.value.status, exc.value.code) == (401, "invalid_api_key")
        assert "sk-wrong" not in exc.value.message                         # a key is never echoed
    who = authenticate(c, {"x-api-key": "sk-a"}, keys)
    assert (who.tenant, who.key_id, who.surface) == ("acme", "a1", "cheap")
    assert who.surfaces == {"cheap"} and who.workloads == {"interactive"}   # bound: no other choice
    assert authenticate(c, {"authorization": "Bearer sk-inline"}, {}).tenant == "inline"   # inline config key


def test_optional_auth_serves_a_request_without_a_key_as_nobody_but_still_refuses_a_wrong_key():
    c = cfg(auth="optional")
    anon = authenticate(c, {"x-llm-tenant": "acme"}, {})
    assert anon.tenant is None and anon.surfaces is None                 # a tenant header names nobody
    with pytest.raises(errors.Unauthorized):
        authenticate(c, {"authorization": "Bearer sk-wrong"}, {})
    assert cfg(auth={"mode": "required", "keys_file": "/k"}).keys_file == "/k"
    with pytest.raises(Exception, match="auth.mode: must be one of required, optional"):
        cfg(auth="sometimes")


def test_a_key_whose_tenant_is_gone_is_refused_not_served_as_nobody():
    with pytest.raises(errors.Unauthorized, match="tenant is not configured"):
        authenticate(cfg(), {"x-api-key": "sk-a"}, entries(f"{{tenant: gone, sha256: {SHA_A}}}"))


def test_the_key_file_is_reread_when_it_changes_and_a_bad_edit_keeps_the_old_keys(tmp_path):
    path = tmp_path / "keys.yaml"
    kf = KeyFile(path)
    assert kf.check() is False and kf.entries == {}                     # no file yet: no keys
    path.write_text(f"keys:\n  - {{id: a1, tenant: acme, sha256: {SHA_A}}}\n")
    assert kf.check() is True and SHA_A in kf.entries
    assert kf.check() is False                                           # same content: nothing to do
    path.write_text("keys: [oops")
    assert kf.check() is False and SHA_A in kf.entries and kf.reload_failures == 1
    assert kf.check() is False and kf.reload_failures == 1               # the same bad content, reported once
    path.write_text("keys:\n")                                           # every key revoked
    assert kf.check() is True and kf.entries == {}


def test_keys_create_prints_the_key_once_and_a_line_the_gateway_reads_and_revoke_removes_it(tmp_path, capsys):
    path = tmp_path / "keys.yaml"
    path.write_text("# tenants' keys\nkeys:\n")
    assert main(["keys", "create", "--tenant", "nightly", "--id", "n1", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    key = out.split("key: ", 1)[1].split("\n", 1)[0]
    assert key.startswith("sk-llmgw-") and len(key) > 40
    assert key not in path.read_text() and digest(key) in path.read_text()
    config = load(DEFAULT_ROUTING)
    assert authenticate(config, {"authorization": f"Bearer {key}"}, parse_keys(path.read_text())).tenant == "nightly"
    assert main(["keys", "create", "--tenant", "nobody"]) == 2                        # not a tenant
    assert main(["keys", "create", "--tenant", "nightly", "--surfaces", "support"]) == 2   # not nightly's surface
    capsys.readouterr()
    assert main(["keys", "revoke", "n1", "--file", str(path)]) == 0
    assert parse_keys(path.read_text()) == {} and path.read_text().startswith("# tenants' keys")
    assert main(["keys", "revoke", "n1", "--file", str(path)]) == 1
    assert new_key() != new_key()


def test_without_refuses_an_entry_it_cannot_find_on_one_line():
    text = f"keys:\n  - id: a1\n    tenant: acme\n    sha256: {SHA_A}\n"
    with pytest.raises(KeyFileError):
        without(text, parse_keys(text)[SHA_A])


def test_the_demo_keys_file_names_the_documented_demo_tenants():
    demo = parse_keys(DEMO_KEYS.read_text())
    config = load(DEFAULT_ROUTING)
    assert authenticate(config, {"authorization": "Bearer sk-helpdesk-demo"}, demo).tenant == "helpdesk"
    assert authenticate(config, {"x-api-key": "sk-nightly-demo"}, demo).tenant == "nightly"


# ---- what a caller sees and touches ---------------------------------------------------------------

def _gateway(text: str) -> Gateway:
    gw = Gateway(load(DEFAULT_ROUTING))
    gw.keys.entries = parse_keys(text)
    return gw


def _models(gw: Gateway, key: str | None, **headers) -> tuple[int, object]:
    auth = {"authorization": f"Bearer {key}"} if key else {}
    answer = gw.request_headers({":method": "GET", ":path": "/v1/models", **auth, **headers}, True)
    body = json.loads(answer.body)
    return answer.status, body if answer.status != 200 else {m["id"] for m in body["data"]}


def test_models_lists_only_what_the_calling_tenant_may_use():
    gw = _gateway(DEMO_KEYS.read_text())
    status, body = _models(gw, None)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    _, nightly = _models(gw, "sk-nightly-demo")       # drafts: denies claude-sonnet-4-6
    _, helpdesk = _models(gw, "sk-helpdesk-demo")     # support: quality floor 4
    assert "claude-sonnet-4-6" not in nightly and "gpt-4o-mini" in nightly and "auto" in nightly
    assert {"gpt-4o", "claude-sonnet-4-6"} <= helpdesk and "gpt-4o-mini" not in helpdesk
    status, body = _models(gw, "sk-nightly-demo", **{"x-llm-surface": "support"})
    assert status == 403 and body["error"]["code"] == "permission_denied"
    lookup = gw.request_headers({":method": "GET", ":path": "/v1/models/claude-sonnet-4-6",
                                 "authorization": "Bearer sk-nightly-demo"}, True)
    assert lookup.status == 404


def test_models_leaves_out_a_model_the_callers_cost_cap_refuses_for_every_request():
    """drafts caps max_cost_per_1k at 0.002: gpt-4o costs $2.50/M at best (input), so every pinned request
    of a drafts caller is refused (422); it was listed. claude-haiku-4-5 ($1/M in, $5/M out) serves a
    prompt-heavy request within the cap, so it stays."""
    gw = _gateway(DEMO_KEYS.read_text())
    _, nightly = _models(gw, "sk-nightly-demo")
    assert "gpt-4o" not in nightly and "claude-haiku-4-5" in nightly
    _, on_drafts = _models(gw, "sk-nightly-demo", **{"x-llm-surface": "drafts"})
    assert on_drafts == nightly
    lookup = gw.request_headers({":method": "GET", ":path": "/v1/models/gpt-4o",
                                 "authorization": "Bearer sk-nightly-demo"}, True)
    assert lookup.status == 404


def test_a_listed_model_serves_some_request_and_an_unlisted_one_none():
    """The listing is the planner's own rule for a pinned request (policy.refusal), not a copy of it."""
    config = load(DEFAULT_ROUTING)
    drafts = {"x-llm-surface": "drafts", "x-llm-workload": "interactive"}
    demo = authenticate(config, {"authorization": "Bearer sk-demo"},
                        parse_keys("keys:\n" + KeyEntry("demo", "demo", digest("sk-demo")).line() + "\n"))
    prompt_heavy = {"messages": [{"role": "user", "content": "word " * 3000}], "max_tokens": 1}
    for model in config.models.values():
        endpoint = "chat" if "chat" in model.endpoints else "embeddings"
        body = {**prompt_heavy, "model": model.id} if endpoint == "chat" else {"model": model.id, "input": "hi"}
        try:
            decide(config, body, endpoint, drafts, caller=demo, capability=lambda m: None)
            served = True
        except (UnsupportedFeature, PermissionDenied):
            served = False
        assert served == (refusal(config, model, drafts, demo) is None), model.id
    assert refusal(config, config.models["gpt-4o"], drafts, demo).startswith("over cost cap")
    assert refusal(config, config.models["claude-sonnet-4-6"], drafts, demo) == "denied by surface 'drafts'"


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_feedback_scores_only_the_callers_own_requests(backend, tmp_path, request):
    url = str(tmp_path / "ledger.db") if backend == "sqlite" else request.getfixturevalue("redis_url")

    async def run():
        ledger = open_ledger(url)
        try:
            for rid, tenant in (("r-acme", "acme"), ("r-anon", None)):
                ledger.append(UsageRecord(time=time.time(), request_id=rid, model="m", provider="a", tenant=tenant))
            assert await ledger.attach_quality("r-acme", 1.0, "user", tenant="other") is None
            assert await ledger.attach_quality("r-acme", 1.0, "user", tenant=None) is None
            assert (await ledger.attach_quality("r-acme", 0.5, "user", tenant="acme")).quality == 0.5
            assert await ledger.attach_quality("r-anon", 1.0, "user", tenant="acme") is None
            assert (await ledger.attach_quality("r-anon", 1.0, "user", tenant=None)).quality == 1.0
            assert {r.request_id: r.quality for r in await ledger.records()} == {"r-acme": 0.5, "r-anon": 1.0}
        finally:
            await ledger.close()

    asyncio.run(run())


def test_a_broken_key_file_is_reported_without_quoting_it():
    with pytest.raises(KeyFileError) as exc:
        parse_keys("keys:\n  - {id: a, tenant: acme, sha256: sk-raw-secret-pasted\n")
    assert "sk-raw-secret" not in str(exc.value) and "line" in str(exc.value)
