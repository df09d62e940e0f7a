"""settlement: token registry, chain cursor and blocks, chain payments, suspense suggestions (issue 7)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_pk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_hash = sa.LargeBinary(length=32)


def upgrade() -> None:
    op.create_table(
        "settlement_tokens",
        sa.Column("pk", _pk, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=16), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("disabled_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_settlement_tokens")),
        sa.UniqueConstraint("id", name=op.f("uq_settlement_tokens_id")),
        sa.UniqueConstraint("chain_id", "address", name=op.f("uq_settlement_tokens_chain_id_address")),
    )
    op.create_index(op.f("ix_settlement_tokens_currency_chain_id"), "settlement_tokens", ["currency", "chain_id"])
    op.create_table(
        "chain_cursors",
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", _hash, nullable=True),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "name", name=op.f("pk_chain_cursors")),
    )
    op.create_table(
        "chain_blocks",
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", _hash, nullable=False),
        sa.Column("parent_hash", _hash, nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("seen_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "number", name=op.f("pk_chain_blocks")),
    )
    op.create_table(
        "chain_payments",
        sa.Column("pk", _pk, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", _hash, nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", _hash, nullable=False),
        sa.Column("block_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("payer", sa.String(length=42), nullable=False),
        sa.Column("payee", sa.String(length=42), nullable=False),
        sa.Column("amount_token", sa.String(length=78), nullable=False),
        sa.Column("invoice_key", _hash, nullable=True),
        sa.Column("terms_version", sa.BigInteger(), nullable=True),
        sa.Column("total_paid_token", sa.String(length=78), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("customer_id", sa.String(length=40), nullable=True),
        sa.Column("invoice_id", sa.String(length=40), nullable=True),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("adjustment_minor", sa.BigInteger(), nullable=False),
        sa.Column("adjustment_note_id", sa.String(length=40), nullable=True),
        sa.Column("suspense_posting_id", sa.String(length=40), nullable=True),
        sa.Column("bookings", sa.Integer(), nullable=False),
        sa.Column("applied_by", sa.String(length=16), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("status IN ('booked','suspense','reversed')", name=op.f("ck_chain_payments_status")),
        sa.CheckConstraint("source IN ('settlement','transfer')", name=op.f("ck_chain_payments_source")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_chain_payments")),
        sa.UniqueConstraint("id", name=op.f("uq_chain_payments_id")),
        sa.UniqueConstraint(
            "chain_id", "tx_hash", "log_index", name=op.f("uq_chain_payments_chain_id_tx_hash_log_index")
        ),
    )
    op.create_index(op.f("ix_chain_payments_status_pk"), "chain_payments", ["status", "pk"])
    op.create_index(op.f("ix_chain_payments_chain_id_block_number"), "chain_payments", ["chain_id", "block_number"])
    op.create_index(op.f("ix_chain_payments_invoice_id"), "chain_payments", ["invoice_id"])
    op.create_table(
        "suspense_suggestions",
        sa.Column("pk", _pk, autoincrement=True, nullable=False),
        sa.Column("chain_payment_id", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["chain_payment_id"],
            ["chain_payments.id"],
            name=op.f("fk_suspense_suggestions_chain_payment_id_chain_payments"),
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_suspense_suggestions")),
    )
    op.create_index(
        op.f("ix_suspense_suggestions_chain_payment_id_rank"), "suspense_suggestions", ["chain_payment_id", "rank"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_suspense_suggestions_chain_payment_id_rank"), table_name="suspense_suggestions")
    op.drop_table("suspense_suggestions")
    op.drop_index(op.f("ix_chain_payments_invoice_id"), table_name="chain_payments")
    op.drop_index(op.f("ix_chain_payments_chain_id_block_number"), table_name="chain_payments")
    op.drop_index(op.f("ix_chain_payments_status_pk"), table_name="chain_payments")
    op.drop_table("chain_payments")
    op.drop_table("chain_blocks")
    op.drop_table("chain_cursors")
    op.drop_index(op.f("ix_settlement_tokens_currency_chain_id"), table_name="settlement_tokens")
    op.drop_table("settlement_tokens")
