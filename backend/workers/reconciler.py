"""The reconciler worker: `backend.settlement.reconciler.Reconciler` wired to the app's settings,
database and the contracts recorded for the chain (started by `tally run`; alone with
`tally worker reconcile`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from backend.anchoring.chain import ChainUnavailable, connect_rpc, rpc
from backend.db import transaction
from backend.services.invoices import default_payee
from backend.settings import LOCAL_CHAIN_ID
from backend.settlement.chainlogs import ChainReader
from backend.settlement.config import ReconcilerConfig
from backend.settlement.reconciler import Reconciler
from backend.settlement.tokens import ensure_local_tokens

log = logging.getLogger("tally.reconciler")


def chain_connector(settings: Any, deployments: Any, config: ReconcilerConfig,
                    rpc_url: str | None = None) -> Callable[[], ChainReader]:  # fmt: skip
    """A factory the worker calls (again after a failure): the RPC endpoint and the
    InvoiceSettlement recorded for its chain id."""
    url = rpc_url or settings.effective_rpc_url

    def connect() -> ChainReader:
        w3 = connect_rpc(url, settings.rpc_timeout_s)
        chain_id = int(rpc(lambda: w3.eth.chain_id))
        address = deployments.for_chain(chain_id).get("InvoiceSettlement")
        if not address:
            raise ChainUnavailable(f"no InvoiceSettlement recorded for chain {chain_id} in {deployments.path}")
        return ChainReader(w3, address, headers_per_batch_max=config.headers_per_batch_max)

    return connect


def build_reconciler(
    settings: Any,
    engine: Engine,
    sessions: sessionmaker[Session],
    deployments: Any,
    *,
    rpc_url: str | None = None,
    fault: Callable[[str], None] | None = None,
    **overrides: Any,
) -> Reconciler:
    config = ReconcilerConfig.from_settings(settings, **overrides)
    connect = chain_connector(settings, deployments, config, rpc_url)
    _register_local_tokens(sessions, deployments, connect)
    return Reconciler(
        sessions=sessions, engine=engine, ledger_id=settings.ledger_id, config=config,
        connect_chain=connect,
        default_payee=default_payee(settings), local_addresses=deployments.for_chain, fault=fault,
    )  # fmt: skip


def _register_local_tokens(
    sessions: sessionmaker[Session], deployments: Any, connect: Callable[[], ChainReader]
) -> None:
    """On the local chain, register the deployed TestStablecoin as "usd" now, before the API takes
    its first invoice (best effort: the worker's first tick does it again if the chain is not up)."""
    try:
        chain_id = connect().chain_id
    except ChainUnavailable as error:
        log.warning("token registry not checked at startup (%s); the reconciler will retry", error)
        return
    if chain_id == LOCAL_CHAIN_ID:
        with transaction(sessions) as session:
            ensure_local_tokens(session, chain_id, deployments.for_chain(chain_id))
