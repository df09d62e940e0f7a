"""The writer-key cache saves lookups, never revocations: a revoked key writes and replays nothing."""

from __future__ import annotations

from typing import Any

from api_support import Api

from backend.api.deps import key_cache
from backend.db import transaction
from backend.services.keys import hash_secret, revoke_key

PAYEE = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
BODY = {"name": "Cached", "currency": "usd", "payee_address": PAYEE}


def _backoffice(api: Api) -> tuple[str, str]:
    created = api.post("/v1/api_keys", {"role": "backoffice", "name": "cached"}).json()
    return created["id"], created["secret"]


def _customer_count(api: Api) -> int:
    return len(api.get("/v1/customers", params={"limit": 100}).json()["data"])


def _refused(reply: Any) -> bool:
    return reply.status_code == 401 and reply.json()["error"]["code"] == "api_key_invalid"


def test_a_key_revoked_behind_the_cache_writes_and_replays_nothing(api: Api) -> None:
    key_id, secret = _backoffice(api)
    first = api.post("/v1/customers", BODY, key=secret, headers={"Idempotency-Key": "first"})
    assert first.status_code == 200
    assert key_cache(api.app).get(hash_secret(secret)) is not None  # the next writes take the cached path
    with transaction(api.app.state.tally.sessions) as session:  # as the CLI or another worker would
        revoke_key(session, key_id=key_id)
    assert key_cache(api.app).get(hash_secret(secret)) is not None
    before = _customer_count(api)
    assert _refused(api.post("/v1/customers", BODY, key=secret, headers={"Idempotency-Key": "second"}))
    assert _refused(api.post("/v1/customers", BODY, key=secret))
    assert _refused(api.post("/v1/customers", BODY, key=secret, headers={"Idempotency-Key": "first"}))  # no replay
    assert _refused(api.get("/v1/customers", key=secret))  # reads never use the cache
    assert _customer_count(api) == before


def test_revoking_through_the_api_empties_the_cache(api: Api) -> None:
    key_id, secret = _backoffice(api)
    assert api.post("/v1/customers", BODY, key=secret).status_code == 200
    assert api.post(f"/v1/api_keys/{key_id}/revoke").status_code == 200
    assert key_cache(api.app).get(hash_secret(secret)) is None
    assert _refused(api.post("/v1/customers", BODY, key=secret))


def test_unknown_keys_are_not_cached_and_live_keys_keep_writing(api: Api) -> None:
    unknown = "tally_sk_" + "x" * 43
    assert _refused(api.post("/v1/customers", BODY, key=unknown))
    assert key_cache(api.app).get(hash_secret(unknown)) is None
    _, secret = _backoffice(api)
    for index in range(3):  # the first lookup fills the cache, the others are served from it
        reply = api.post("/v1/customers", BODY, key=secret, headers={"Idempotency-Key": f"live-{index}"})
        assert reply.status_code == 200
