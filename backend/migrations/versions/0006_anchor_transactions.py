"""anchoring: anchor transactions and worker leases (issue 6)

Revision ID: 0006
Revises: 0001
Create Date: 2026-12-04 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0001"
branch_labels = None
depends_on = None

_pk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "anchor_transactions",
        sa.Column("pk", _pk, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("ledger_id", sa.String(length=64), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract", sa.String(length=42), nullable=False),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("previous_size", sa.BigInteger(), nullable=False),
        sa.Column("updates", sa.JSON(), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("gas_limit", sa.BigInteger(), nullable=False),
        sa.Column("max_fee_per_gas", sa.BigInteger(), nullable=False),
        sa.Column("max_priority_fee_per_gas", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("raw_transaction", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("replaces_id", sa.String(length=40), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("block_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("effective_gas_price", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("sent_ms", sa.BigInteger(), nullable=True),
        sa.Column("mined_ms", sa.BigInteger(), nullable=True),
        sa.Column("confirmed_ms", sa.BigInteger(), nullable=True),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "status IN ('built','sent','mined','confirmed','dropped','replaced','reverted')",
            name=op.f("ck_anchor_transactions_status"),
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_anchor_transactions")),
        sa.UniqueConstraint("id", name=op.f("uq_anchor_transactions_id")),
        sa.UniqueConstraint("tx_hash", name=op.f("uq_anchor_transactions_tx_hash")),
    )
    op.create_index(
        op.f("ix_anchor_transactions_ledger_id_status"),
        "anchor_transactions",
        ["ledger_id", "status"],
    )
    op.create_index(
        op.f("ix_anchor_transactions_ledger_id_tree_size"),
        "anchor_transactions",
        ["ledger_id", "tree_size"],
    )
    op.create_table(
        "worker_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=80), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("acquired_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_worker_leases")),
    )


def downgrade() -> None:
    op.drop_table("worker_leases")
    op.drop_index(op.f("ix_anchor_transactions_ledger_id_tree_size"), table_name="anchor_transactions")
    op.drop_index(op.f("ix_anchor_transactions_ledger_id_status"), table_name="anchor_transactions")
    op.drop_table("anchor_transactions")
