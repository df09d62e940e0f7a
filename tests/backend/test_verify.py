"""API receipts verify with `tally verify`; forged or tampered receipts are refused with distinct exit codes."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anchoring_kit import (
    LEDGER_ID,
    Setup,
    World,
    anchor_everything,
    api_app,
    build_world,
    create_database,
    customer_document,
    drop_database,
    make_setup,
)
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from backend.chain.anvil import Anvil, start_anvil
from backend.cli import app as cli
from backend.db import migrate, transaction
from backend.models import LedgerEntry
from backend.settings import REPO_ROOT
from ledger.canonical import document_hash
from ledger.entries import Entry
from ledger.hexutil import to_hex
from ledger.merkle import MerkleLog
from ledger.receipts import Anchor, build_receipt

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class Ctx:
    setup: Setup
    client: TestClient
    world: World
    before_anchoring: Any
    documents: list[dict[str, Any]]


@pytest.fixture(scope="module")
def ctx(postgres_server: str, anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctx]:
    url = create_database(postgres_server)
    migrate(url)
    made = Ctx()
    made.setup = make_setup(url, anvil.url, tmp_path_factory.mktemp("verify"))
    with TestClient(api_app(made.setup)) as client:
        made.client = client
        made.world = build_world(made.setup, client)
        made.before_anchoring = client.get(
            f"/v1/invoices/{made.world.ids['plain_a']}/receipt", headers=auth(made.world.admin)
        )
        anchor_everything(made.setup)
        with transaction(made.setup.sessions) as session:
            made.documents = [
                row.document
                for row in session.scalars(
                    select(LedgerEntry).where(LedgerEntry.ledger_id == LEDGER_ID).order_by(LedgerEntry.sequence)
                )
            ]
        yield made
    made.setup.engine.dispose()
    drop_database(postgres_server, url)


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def receipt_of(ctx: Ctx, path: str, key: str | None = None) -> dict[str, Any]:
    reply = ctx.client.get(path, headers=auth(key or ctx.world.admin))
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def run_verify(receipt: Any, rpc_url: str, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt) if not isinstance(receipt, str) else receipt)
    result = CliRunner().invoke(cli, ["verify", str(path), "--rpc-url", rpc_url, "--json", *extra])
    return result.exit_code, json.loads(result.stdout)


def forged(documents: list[dict[str, Any]], index: int, tree_size: int, anchor: dict[str, Any]) -> dict[str, Any]:
    """What a dishonest server could hand out: a self-consistent receipt over its own version of
    the ledger (`documents`), claiming the real anchor."""
    log = MerkleLog()
    log.append_many(Entry(sequence, document).leaf_input() for sequence, document in enumerate(documents))
    return build_receipt(
        Entry(index, documents[index]),
        tree_size=tree_size,
        root=log.root(tree_size),
        inclusion_proof=log.inclusion_proof(index, tree_size),
        anchor=Anchor(
            anchor["chain_id"], anchor["contract"], bytes.fromhex(anchor["tx_hash"][2:]), anchor["block_number"]
        ),
    )


def test_before_anchoring_the_receipt_is_409_not_anchored_with_the_expected_wait(ctx: Ctx) -> None:
    reply = ctx.before_anchoring
    assert reply.status_code == 409
    error = reply.json()["error"]
    assert set(error) == {"type", "code", "message", "param"} and error["code"] == "not_anchored"
    assert "expected within about" in error["message"] and int(reply.headers["Retry-After"]) >= 1


def test_every_invoice_receipt_verifies_against_the_chain(ctx: Ctx, anvil: Anvil, tmp_path: Path) -> None:
    kinds = {}
    for name in ("plain_a", "credited_a", "voided_b", "plain_b"):
        receipt = receipt_of(ctx, f"/v1/invoices/{ctx.world.ids[name]}/receipt")
        assert receipt["document"]["invoice_id"] == ctx.world.ids[name]
        code, result = run_verify(receipt, anvil.url, tmp_path)
        assert (code, result["outcome"]) == (0, "valid"), result
        assert [check["name"] for check in result["checks"]][-1] == "anchor_root"
        kinds[name] = receipt["kind"]
    # The current entry: the latest terms version, or the entry that cancelled the invoice.
    assert kinds == {
        "plain_a": "invoice_issued",
        "credited_a": "terms_updated",
        "voided_b": "invoice_voided",
        "plain_b": "invoice_issued",
    }


def test_entry_receipts_and_partner_scope(ctx: Ctx, anvil: Anvil, tmp_path: Path) -> None:
    ids, partner = ctx.world.ids, ctx.world.partner_a
    own = receipt_of(ctx, f"/v1/invoices/{ids['credited_a']}/receipt", key=partner)
    assert run_verify(own, anvil.url, tmp_path)[0] == 0
    assert ctx.client.get(f"/v1/invoices/{ids['plain_b']}/receipt", headers=auth(partner)).status_code == 404
    with transaction(ctx.setup.sessions) as session:
        rows = {
            row.invoice_id: row.sequence for row in session.scalars(select(LedgerEntry).where(LedgerEntry.kind == 1))
        }
    issued_a = receipt_of(ctx, f"/v1/ledger/entries/{rows[ids['credited_a']]}/receipt", key=partner)
    assert issued_a["kind"] == "invoice_issued" and run_verify(issued_a, anvil.url, tmp_path)[0] == 0
    reply = ctx.client.get(f"/v1/ledger/entries/{rows[ids['plain_b']]}/receipt", headers=auth(partner))
    assert reply.status_code == 404
    anchors = ctx.client.get("/v1/anchors?status=confirmed", headers=auth(partner)).json()["data"]
    assert anchors and anchors[0]["tree_size"] == len(ctx.documents) and anchors[0]["object"] == "anchor"


def test_tampered_and_forged_receipts_are_refused(ctx: Ctx, anvil: Anvil, tmp_path: Path) -> None:
    honest = receipt_of(ctx, f"/v1/invoices/{ctx.world.ids['credited_a']}/receipt")
    index, size, anchor = honest["leaf_index"], honest["tree_size"], honest["anchor"]
    documents = ctx.documents

    edited = copy.deepcopy(honest)  # a document edited, nothing else
    edited["document"]["reason"] = "paid in full"
    assert run_verify(edited, anvil.url, tmp_path)[1]["reason"] == "document_hash"

    rehashed = copy.deepcopy(edited)  # ... and its hash and leaf recomputed, the proof kept
    entry = Entry(index, rehashed["document"])
    rehashed.update(document_hash=to_hex(document_hash(rehashed["document"])), leaf_input=to_hex(entry.leaf_input()))
    assert run_verify(rehashed, anvil.url, tmp_path)[1]["reason"] == "inclusion_proof"

    leaf_changed = copy.deepcopy(honest)  # the leaf input's sequence changed
    leaf_changed["leaf_input"] = (
        honest["leaf_input"][: 2 + 64 * 2] + "%064x" % (index + 1) + honest["leaf_input"][2 + 64 * 3 :]
    )
    code, result = run_verify(leaf_changed, anvil.url, tmp_path)
    assert code == 1 and result["reason"] in ("leaf_input", "leaf_index")

    # A dishonest server's own ledger, each tampering in turn; the chain's root refuses them all.
    changed = copy.deepcopy(documents)
    changed[index] = {**changed[index], "reason": "paid in full"}
    deleted = documents[:1] + documents[2:] + [customer_document(99)]
    swapped = copy.deepcopy(documents)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    for name, version, at in (
        ("document edited", changed, index),
        ("entry deleted", deleted, index - 1),
        ("entries swapped", swapped, 0),
    ):
        code, result = run_verify(forged(version, at, size, anchor), anvil.url, tmp_path)
        assert (code, result["reason"]) == (1, "root_mismatch"), name

    never = forged([*documents, customer_document(7)], index, size + 1, anchor)  # a head never anchored
    code, result = run_verify(never, anvil.url, tmp_path)
    assert (code, result["outcome"], result["reason"]) == (2, "not_anchored", "not_anchored")


def test_exit_codes_for_unreachable_wrong_chain_and_unreadable(ctx: Ctx, tmp_path: Path) -> None:
    honest = receipt_of(ctx, f"/v1/invoices/{ctx.world.ids['plain_a']}/receipt")
    assert run_verify(honest, "http://127.0.0.1:9", tmp_path, "--timeout", "2")[0] == 3
    other = start_anvil(extra_args=("--chain-id", "1337"))
    try:
        code, result = run_verify(honest, other.url, tmp_path)
        assert (code, result["reason"]) == (4, "wrong_chain")
    finally:
        other.stop()
    assert run_verify("{not json", "http://127.0.0.1:9", tmp_path)[0] == 4
    readable = CliRunner().invoke(cli, ["verify", str(tmp_path / "receipt.json")])
    assert readable.exit_code == 4  # --rpc-url missing: a usage error, never 2


def test_the_verifier_needs_no_database_layer(ctx: Ctx, anvil: Anvil, tmp_path: Path) -> None:
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt_of(ctx, f"/v1/invoices/{ctx.world.ids['plain_a']}/receipt")))
    script = (
        "import sys; from pathlib import Path; from backend.verify import load_receipt, verify_receipt\n"
        f"result = verify_receipt(load_receipt(Path({str(path)!r})), {anvil.url!r})\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'psycopg', 'web3', 'fastapi')]\n"
        "print(result.outcome, loaded)"
    )
    output = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "valid []"
