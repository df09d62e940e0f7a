"""The FastAPI application: routers, shared state, and /healthz."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from backend.chain.client import Deployments, connect
from backend.db import create_engine, ping, session_factory
from backend.settings import Settings, get_settings


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    w3: Web3
    deployments: Deployments
    # Group commits of this process by name (backend.api.idempotency.Writer.run_grouped).
    groups: dict[str, Any] = field(default_factory=dict)


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or create_engine(settings.effective_database_url)
    state = AppState(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        w3=connect(settings.effective_rpc_url, settings.rpc_timeout_s),
        deployments=Deployments(settings.deployments_file),
    )
    app = FastAPI(
        title="Tally",
        version="0.1.0",
        description="A billing ledger whose history cannot be rewritten. Every entry is a leaf of an "
        "RFC 9162 Merkle log anchored on-chain.",
    )
    app.state.tally = state
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"])
    _include_routers(app)
    return app


def create_server_app() -> FastAPI:
    """The app for a server process: `uvicorn backend.app:create_server_app --factory --workers 2`
    (settings from the environment). `create_app`, then `freeze_heap`."""
    app = create_app()
    freeze_heap()
    return app


def freeze_heap() -> None:
    """Move every object alive now out of the garbage collector's view (`gc.freeze`), after a
    collection. Call it once a server process has built its app: modules, routes, schemas and
    pools live as long as the process, and walking them in every full collection cost about a
    sixth of the CPU of a bulk finalize (its many short-lived objects trigger collections)."""
    gc.collect()
    gc.freeze()


def _include_routers(app: FastAPI) -> None:
    from backend.api import include_routers

    include_routers(app)


def healthz(request: Request) -> JSONResponse:
    """Database backend, chain id, latest block and contract addresses; 503 when either side is down."""
    state: AppState = request.app.state.tally
    body: dict[str, Any] = {"status": "ok"}
    database: dict[str, Any] = {"backend": state.engine.dialect.name}
    try:
        ping(state.engine)
        database["reachable"] = True
    except Exception as error:  # noqa: BLE001 (any failure means unhealthy; say which)
        database.update(reachable=False, error=type(error).__name__)
        body["status"] = "degraded"
    body["database"] = database
    chain: dict[str, Any] = {"rpc_url": _redact(state.settings.effective_rpc_url)}
    try:
        chain_id = state.w3.eth.chain_id
        chain.update(
            reachable=True,
            chain_id=chain_id,
            latest_block=state.w3.eth.block_number,
            contracts=state.deployments.for_chain(chain_id),
        )
    except Exception as error:  # noqa: BLE001
        chain.update(reachable=False, error=type(error).__name__)
        body["status"] = "degraded"
    body["chain"] = chain
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


def _redact(url: str) -> str:
    # RPC URLs often carry an API key in the path; show scheme and host only.
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}" if rest else url
