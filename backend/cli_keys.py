"""`tally keys`: create, list and revoke API keys straight in the database (no server needed)."""

from __future__ import annotations

import typer
from rich.console import Console
from sqlalchemy import select

from backend.db import create_engine, session_factory, transaction
from backend.models import ApiKey
from backend.services.common import ServiceError
from backend.services.keys import Role, create_key, revoke_key
from backend.settings import get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Manage API keys.")
console = Console()
err_console = Console(stderr=True)
list_rows_max = 1_000


def _sessions():  # type: ignore[no-untyped-def]
    return session_factory(create_engine(get_settings().effective_database_url))


@app.command()
def create(
    role: Role = typer.Option(..., "--role", help="admin, backoffice, auditor or partner."),
    customer: str | None = typer.Option(None, "--customer", help="cus_... (partner keys only)."),
    name: str | None = typer.Option(None, "--name", help="A label to recognise the key by."),
) -> None:
    """Create a key and print its secret (shown once; only its hash is stored)."""
    try:
        with transaction(_sessions()) as session:
            row, secret = create_key(session, role=role, customer_id=customer, name=name)
    except ServiceError as error:
        err_console.print(f"[bold red]error:[/] {error.message}")
        raise typer.Exit(1) from error
    console.print(f"{row.id}  {row.role}{'  ' + row.customer_id if row.customer_id else ''}")
    console.print(secret, soft_wrap=True, highlight=False)


@app.command("list")
def list_keys() -> None:
    """List keys, newest first, one per line (tab-separated, for scripts): id, role, customer,
    secret prefix, name, created, revoked (unix seconds; empty when live)."""
    with transaction(_sessions()) as session:
        rows = list(session.scalars(select(ApiKey).order_by(ApiKey.pk.desc()).limit(list_rows_max)))
    typer.echo("\t".join(("id", "role", "customer", "prefix", "name", "created", "revoked")))
    for row in rows:
        fields = (row.id, row.role, row.customer_id or "", row.secret_prefix, row.name or "", str(row.created),
                  str(row.revoked_at or ""))  # fmt: skip
        typer.echo("\t".join(fields))


@app.command()
def revoke(key_id: str = typer.Argument(..., help="The key's id (key_...).")) -> None:
    """Revoke a key; every later request with it is refused."""
    try:
        with transaction(_sessions()) as session:
            row = revoke_key(session, key_id=key_id)
    except ServiceError as error:
        err_console.print(f"[bold red]error:[/] {error.message}")
        raise typer.Exit(1) from error
    console.print(f"{row.id} revoked at {row.revoked_at}")
