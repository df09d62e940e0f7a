"""The HTTP API under /v1 (Stripe's conventions; see README, "The HTTP API")."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from backend.api.errors import install_error_handlers
from backend.api.limits import BodyLimitMiddleware


def include_routers(app: FastAPI) -> None:
    """Called by backend.app.create_app: error handlers, the body bound, every router."""
    from backend.api.routes import anchoring, customers, invoices, keys, ledger, notes, payments, settlement

    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware)
    for module in (customers, invoices, notes, payments, ledger, anchoring, settlement, keys):
        app.include_router(module.router)
    _tidy_openapi(app)


def _tidy_openapi(app: FastAPI) -> None:
    """Validation errors answer 400 in the error shape (backend.api.errors), never FastAPI's 422:
    drop the 422 entries and their schemas so the document says what the API does."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        schemas = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
