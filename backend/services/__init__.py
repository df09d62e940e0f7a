"""Services: the backend's business operations, HTTP-free (keyword-only, one session each).

Every write runs inside the caller's transaction and appends its ledger entry and journal
posting there, so a business change, its entry and its journal lines commit together.
"""

from backend.services.keys import ensure_admin_key

__all__ = ["ensure_admin_key"]
