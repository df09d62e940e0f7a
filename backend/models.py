"""SQLAlchemy models. Every table is registered on backend.db.Base.metadata."""

from __future__ import annotations

from backend.db import Base

__all__ = ["Base"]
