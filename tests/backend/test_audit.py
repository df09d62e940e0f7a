"""`tally audit` passes a clean ledger and names every tampering, in the database and in export bundles."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from anchoring_kit import (
    LEDGER_ID,
    anchor_everything,
    api_app,
    build_world,
    create_database,
    customer_document,
    drop_database,
    make_setup,
)
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text, update
from typer.testing import CliRunner

from backend.chain.anvil import Anvil
from backend.cli import app as cli
from backend.db import create_engine, migrate
from backend.models import AnchorTransaction, Invoice, JournalLine, LedgerEntry, MerkleNode
from backend.settings import get_settings
from ledger.entries import Entry
from ledger.merkle import MerkleLog
from ledger.receipts import Anchor, build_receipt

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class Template:
    url: str
    data_dir: Path
    world: Any
    receipt: dict[str, Any]


@pytest.fixture(scope="module")
def template(postgres_server: str, anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    """A real ledger built through the API and anchored, kept as a template database."""
    made = Template()
    made.url = create_database(postgres_server)
    migrate(made.url)
    made.data_dir = tmp_path_factory.mktemp("audit")
    setup = make_setup(made.url, anvil.url, made.data_dir)
    with TestClient(api_app(setup)) as client:
        made.world = build_world(setup, client)
        anchor_everything(setup)
        reply = client.get(
            f"/v1/invoices/{made.world.ids['credited_a']}/receipt",
            headers={"Authorization": f"Bearer {made.world.admin}"},
        )
        made.receipt = reply.json()
    setup.engine.dispose()
    yield made
    drop_database(postgres_server, made.url)


@pytest.fixture
def ledger_db(postgres_server: str, template: Template) -> Iterator[str]:
    """A fresh copy of the template ledger for one test to tamper with."""
    url = create_database(postgres_server, template=template.url)
    yield url
    drop_database(postgres_server, url)


def audit(
    template: Template, anvil_url: str, *args: str, database_url: str | None = None
) -> tuple[int, dict[str, Any]]:
    environment = {"TALLY_LEDGER_ID": LEDGER_ID, "TALLY_DATA_DIR": str(template.data_dir), "RPC_URL": anvil_url}
    get_settings.cache_clear()
    try:
        command = ["audit", *args, "--json"] + (["--database-url", database_url] if database_url else [])
        result = CliRunner().invoke(cli, command, env=environment)
    finally:
        get_settings.cache_clear()
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def named(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(finding["code"], finding["subject"]) for finding in report["findings"]}


def sequence_of(engine: Engine, kind: int) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(LedgerEntry.sequence).where(LedgerEntry.kind == kind).limit(1)))


def test_a_clean_ledger_passes(template: Template, ledger_db: str, anvil: Anvil) -> None:
    code, report = audit(template, anvil.url, database_url=ledger_db)
    assert (code, report["ok"], report["findings"]) == (0, True, [])
    checked = report["checked"]
    assert checked["entries"] > 8 and checked["anchored_heads"] >= 1 and checked["invoices"] == 4
    assert checked["postings"] >= 6 and report["chain"]["contract"].startswith("0x")


def _edit_document(engine: Engine, sequence: int) -> None:
    with engine.begin() as connection:
        document = connection.scalar(select(LedgerEntry.document).where(LedgerEntry.sequence == sequence))
        connection.execute(
            update(LedgerEntry)
            .where(LedgerEntry.sequence == sequence)
            .values(document={**document, "reason": "rewritten"})
        )


def _execute(engine: Engine, statement: Any, parameters: dict[str, Any] | None = None) -> None:
    with engine.begin() as connection:
        connection.execute(statement, parameters or {})


def _swap(engine: Engine, first: int, second: int) -> None:
    columns = (
        "id",
        "kind",
        "subject",
        "document",
        "document_hash",
        "leaf_input",
        "leaf_hash",
        "terms_version",
        "customer_id",
        "invoice_id",
    )
    with engine.begin() as connection:
        rows = {
            s: connection.execute(
                select(*[getattr(LedgerEntry, c) for c in columns]).where(LedgerEntry.sequence == s)
            ).one()
            for s in (first, second)
        }
        connection.execute(update(LedgerEntry).where(LedgerEntry.sequence == first).values(id="ent_swap"))
        for target, source in ((second, first), (first, second)):
            connection.execute(
                update(LedgerEntry)
                .where(LedgerEntry.sequence == target)
                .values(dict(zip(columns, rows[source], strict=True)))
            )


TAMPERINGS: dict[str, tuple[Callable[[Engine, int], None], Callable[[int], set[tuple[str, str]]]]] = {
    "document edited in the database": (_edit_document, lambda k: {("document_hash_mismatch", f"entry {k}")}),
    "entry deleted": (
        lambda e, k: _execute(e, text("DELETE FROM ledger_entries WHERE sequence = :k"), {"k": k}),
        lambda k: {("sequence_gap", f"entry {k}")},
    ),
    "two entries swapped": (
        lambda e, k: _swap(e, k, k + 1),
        lambda k: {("leaf_input_mismatch", f"entry {k}"), ("leaf_input_mismatch", f"entry {k + 1}")},
    ),
    "leaf hash changed": (
        lambda e, k: _execute(e, update(LedgerEntry).where(LedgerEntry.sequence == k).values(leaf_hash=b"\x13" * 32)),
        lambda k: {("leaf_hash_mismatch", f"entry {k}")},
    ),
}


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_each_tampering_of_an_entry_is_named(template: Template, ledger_db: str, anvil: Anvil, tampering: str) -> None:
    engine = create_engine(ledger_db)
    try:
        target = sequence_of(engine, 2)  # the credit note
        tamper, expected = TAMPERINGS[tampering]
        tamper(engine, target)
    finally:
        engine.dispose()
    code, report = audit(template, anvil.url, database_url=ledger_db)
    assert code == 1 and not report["ok"]
    assert expected(target) <= named(report), report["findings"]
    if tampering != "leaf hash changed":  # the leaf hash column is not what the tree is built from
        assert any(code == "head_mismatch" or code == "head_not_rebuildable" for code, _ in named(report))


def test_tampered_nodes_balances_journal_and_anchor_records_are_named(
    template: Template, ledger_db: str, anvil: Anvil
) -> None:
    invoice = template.world.ids["plain_b"]
    engine = create_engine(ledger_db)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(MerkleNode).where(MerkleNode.level == 1, MerkleNode.node_index == 1).values(hash=b"\x07" * 32)
            )
            connection.execute(update(Invoice).where(Invoice.id == invoice).values(paid_minor=500))
            posting = connection.scalar(select(JournalLine.posting_id).limit(1))
            connection.execute(
                update(JournalLine)
                .where(JournalLine.posting_id == posting)
                .values(amount_minor=JournalLine.amount_minor + 1)
            )
            anchor = connection.execute(select(AnchorTransaction).limit(1)).mappings().one()
            forged = {
                **anchor,
                "pk": None,
                "id": "anc_forged",
                "tree_size": 2,
                "root": b"\x21" * 32,
                "tx_hash": b"\x22" * 32,
            }
            forged.pop("pk")
            connection.execute(AnchorTransaction.__table__.insert().values(**forged))
    finally:
        engine.dispose()
    code, report = audit(template, anvil.url, database_url=ledger_db)
    codes = named(report)
    assert code == 1
    assert ("invoice_mismatch", f"invoice {invoice}") in codes
    assert ("posting_unbalanced", f"posting {posting}") in codes and ("journal_unbalanced", "journal usd") in codes
    assert ("head_not_on_chain", "head 2") in codes
    assert ("stored_node_mismatch", "merkle_nodes") in codes


def test_receipts_given_to_the_audit_are_checked(
    template: Template, ledger_db: str, anvil: Anvil, tmp_path: Path
) -> None:
    honest = template.receipt
    (tmp_path / "honest.json").write_text(json.dumps(honest))
    assert audit(template, anvil.url, "--receipt", str(tmp_path / "honest.json"), database_url=ledger_db)[0] == 0
    # A self-consistent receipt over a ledger of one forged entry, for a size never anchored.
    log = MerkleLog()
    entries = [Entry(i, customer_document(500 + i)) for i in range(honest["tree_size"] + 3)]
    log.append_many(entry.leaf_input() for entry in entries)
    anchor = honest["anchor"]
    size = honest["tree_size"] + 3
    forged = build_receipt(
        entries[1],
        tree_size=size,
        root=log.root(size),
        inclusion_proof=log.inclusion_proof(1, size),
        anchor=Anchor(anchor["chain_id"], anchor["contract"], bytes(32), anchor["block_number"]),
    )
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    code, report = audit(template, anvil.url, "--receipt", str(tmp_path / "forged.json"), database_url=ledger_db)
    codes = named(report)
    subject = f"receipt {tmp_path / 'forged.json'}"
    assert (
        code == 1
        and {
            ("receipt_document_mismatch", subject),
            ("receipt_not_anchored", subject),
            ("receipt_root_mismatch", subject),
        }
        <= codes
    )


def test_export_bundles_audit_clean_and_tampering_in_them_is_named(
    template: Template, ledger_db: str, anvil: Anvil, tmp_path: Path
) -> None:
    environment = {"TALLY_LEDGER_ID": LEDGER_ID, "TALLY_DATA_DIR": str(template.data_dir), "DATABASE_URL": ledger_db}
    get_settings.cache_clear()
    try:
        exported = CliRunner().invoke(cli, ["export", str(tmp_path / "bundle")], env=environment)
    finally:
        get_settings.cache_clear()
    assert exported.exit_code == 0, exported.output
    assert audit(template, anvil.url, str(tmp_path / "bundle"))[0] == 0
    lines = (tmp_path / "bundle" / "entries.ndjson").read_text().splitlines()
    record = json.loads(lines[3])
    record["document"]["created"] += 1
    lines[3] = json.dumps(record)
    (tmp_path / "bundle" / "entries.ndjson").write_text("\n".join(lines) + "\n")
    code, report = audit(template, anvil.url, str(tmp_path / "bundle"))
    assert code == 1 and {("document_hash_mismatch", "entry 3"), ("bundle_hash_mismatch", "bundle entries")} <= named(
        report
    )


def test_the_http_export_stream_audits_clean_and_a_missing_line_is_named(
    template: Template, ledger_db: str, anvil: Anvil, tmp_path: Path
) -> None:
    from backend.app import create_app
    from backend.settings import Settings

    settings = Settings(database_url=ledger_db, rpc_url=anvil.url, ledger_id=LEDGER_ID, data_dir=template.data_dir)
    with TestClient(create_app(settings)) as client:
        reply = client.get("/v1/ledger/export", headers={"Authorization": f"Bearer {template.world.admin}"})
        client.app.state.tally.engine.dispose()
    assert reply.status_code == 200
    stream = reply.content
    objects = [json.loads(line)["object"] for line in stream.splitlines()]
    assert objects[-1] == "export_manifest" and "ledger_head" in objects and "anchor" in objects
    (tmp_path / "export.ndjson").write_bytes(stream)
    assert audit(template, anvil.url, str(tmp_path / "export.ndjson"))[0] == 0
    lines = stream.splitlines(keepends=True)
    (tmp_path / "cut.ndjson").write_bytes(b"".join(lines[:2] + lines[3:]))
    code, report = audit(template, anvil.url, str(tmp_path / "cut.ndjson"))
    assert code == 1 and {("sequence_gap", "entry 2"), ("bundle_count_mismatch", "bundle entries")} <= named(report)


def test_an_unreachable_chain_is_a_finding_unless_offline(template: Template, ledger_db: str) -> None:
    code, report = audit(template, "http://127.0.0.1:9", database_url=ledger_db)
    assert code == 1 and ("chain_unreachable", "chain") in named(report)
    code, report = audit(template, "http://127.0.0.1:9", "--offline", database_url=ledger_db)
    assert code == 0 and report["chain"] == {"checked": False, "reason": "--offline"}
