"""Lists: `{"object": "list", "data": [...], "has_more": bool, "url": ...}`, newest first, paged
with `limit` and `starting_after` (an object id; the page holds the objects after it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Query
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from backend.services.common import NotFound, page_limit_default, page_limit_max

Limit = Annotated[
    int,
    Query(ge=1, le=page_limit_max, description=f"Page size, 1..{page_limit_max}."),
]
StartingAfter = Annotated[
    str | None,
    Query(
        max_length=40,
        pattern=r"^[a-z]{2,3}_[0-9A-Za-z]{24}$",
        description="An object id from the previous page: this page starts after it.",
    ),
]
DEFAULT_LIMIT = page_limit_default


def page(
    session: Session,
    statement: Select[Any],
    model: Any,
    *,
    limit: int,
    starting_after: str | None,
    url: str,
    render: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """One page of `statement` (which selects `model` rows), ordered by `pk` descending."""
    if starting_after is not None:
        cursor = session.scalar(select(model.pk).where(model.id == starting_after))
        if cursor is None:
            raise NotFound(f"starting_after: no object {starting_after}", param="starting_after")
        statement = statement.where(model.pk < cursor)
    rows = list(session.scalars(statement.order_by(model.pk.desc()).limit(limit + 1)))
    return {
        "object": "list",
        "data": [render(row) for row in rows[:limit]],
        "has_more": len(rows) > limit,
        "url": url,
    }
