"""API keys: random secrets shown once, stored as SHA-256, checked in constant time.

A secret is `tally_sk_` + 43 url-safe characters (256 random bits). With that much entropy a
fast hash is right: nothing can be guessed, so a slow password hash would only cost latency.
Lookup is by the hash (unique index); the stored hash is then compared again with
`hmac.compare_digest`, so the comparison that decides never short-circuits on the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from backend.db import transaction
from backend.models import ApiKey, Customer
from backend.services.common import Conflict, InvalidRequest, NotFound, is_id, new_id, now_s

SECRET_PREFIX = "tally_sk_"  # noqa: S105 (a prefix, not a secret)
SECRET_RANDOM_BYTES = 32
secret_chars_max = 100
# Advisory lock id for the first-admin bootstrap (any fixed 64-bit number; "tallyadm").
ADMIN_BOOTSTRAP_LOCK = 0x74616C6C7961646D
key_name_chars_max = 200


class Role(StrEnum):
    ADMIN = "admin"
    BACKOFFICE = "backoffice"
    AUDITOR = "auditor"
    PARTNER = "partner"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id, role and (partners only) customer."""

    key_id: str
    role: Role
    customer_id: str | None

    @property
    def is_partner(self) -> bool:
        return self.role is Role.PARTNER


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_RANDOM_BYTES)


def authenticate(session: Session, secret: str) -> Principal | None:
    """The principal of a live key with this secret, or None (unknown, malformed or revoked)."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > secret_chars_max:
        return None
    digest = hash_secret(secret)
    row = session.execute(
        select(ApiKey.id, ApiKey.role, ApiKey.customer_id, ApiKey.secret_hash, ApiKey.revoked_at).where(
            ApiKey.secret_hash == digest
        )
    ).one_or_none()
    if row is None or not hmac.compare_digest(bytes(row.secret_hash), digest):
        return None
    if row.revoked_at is not None:
        return None
    return Principal(row.id, Role(row.role), row.customer_id)


def create_key(
    session: Session, *, role: Role | str, customer_id: str | None = None, name: str | None = None
) -> tuple[ApiKey, str]:
    """Create a key; return the row and the secret (the only time the secret exists in clear)."""
    try:
        role = Role(role)
    except ValueError as error:
        raise InvalidRequest(f"unknown role {role!r}", code="parameter_invalid", param="role") from error
    if role is Role.PARTNER:
        if customer_id is None:
            raise InvalidRequest("a partner key is bound to one customer", code="parameter_missing", param="customer")
        if (
            not is_id(customer_id, "cus")
            or session.scalar(select(Customer.pk).where(Customer.id == customer_id)) is None
        ):
            raise NotFound(f"no customer {customer_id}", param="customer")
    elif customer_id is not None:
        raise InvalidRequest("only partner keys are bound to a customer", param="customer")
    secret = new_secret()
    row = ApiKey(
        id=new_id("key"),
        role=str(role),
        customer_id=customer_id,
        secret_hash=hash_secret(secret),
        secret_prefix=secret[: len(SECRET_PREFIX) + 4],
        name=name,
        created=now_s(),
    )
    session.add(row)
    session.flush()
    return row, secret


def revoke_key(session: Session, *, key_id: str) -> ApiKey:
    """Revoke a key (idempotent). The last live admin key cannot be revoked: nobody could manage
    keys through the API afterwards (create another admin key first)."""
    row = get_key(session, key_id=key_id)
    if row.revoked_at is None and row.role == Role.ADMIN:
        admins = session.scalars(
            select(ApiKey.id).where(ApiKey.role == str(Role.ADMIN), ApiKey.revoked_at.is_(None)).with_for_update()
        ).all()
        if admins == [row.id]:
            raise Conflict("this is the last live admin key; create another admin key first", code="last_admin_key")
    if row.revoked_at is None:
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now_s())
            .execution_options(synchronize_session=False)
        )
        session.refresh(row)
    return row


def get_key(session: Session, *, key_id: str) -> ApiKey:
    row = session.scalars(select(ApiKey).where(ApiKey.id == key_id)).one_or_none() if is_id(key_id, "key") else None
    if row is None:
        raise NotFound(f"no API key {key_id}", param="id")
    return row


def ensure_admin_key(sessions: sessionmaker[Session]) -> str | None:
    """Create and return a fresh admin key when no live admin key exists; else None.

    `tally run` prints the returned secret on first start. Two replicas starting at once create
    one key between them: PostgreSQL serializes this transaction with an advisory lock, SQLite
    with BEGIN IMMEDIATE.
    """
    with transaction(sessions) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": ADMIN_BOOTSTRAP_LOCK})
        live = session.scalar(
            select(func.count()).select_from(ApiKey).where(ApiKey.role == str(Role.ADMIN), ApiKey.revoked_at.is_(None))
        )
        if live:
            return None
        _, secret = create_key(session, role=Role.ADMIN, name="first admin key")
        return secret
