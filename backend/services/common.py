"""What every service shares: prefixed ids, the clock, service errors, and the service limits.

Service errors carry a stable `code` and an error `type` (Stripe's categories); they know nothing of
HTTP, the API maps each type to a status code. Ledger rules raise `ledger.errors.LedgerError`
instead; both end up in the same error shape.
"""

from __future__ import annotations

import re
import secrets
import time

# --- Limits (STYLE.md: every bound named `*_max`, in one place) --------------------------------
page_limit_max = 100
page_limit_default = 10
bulk_invoices_max = 1_000
export_batch_rows_max = 1_000
proof_tree_size_max = 2**63 - 1  # BIGINT sizes
wallet_addresses_max = 20
metadata_keys_max = 20
metadata_value_chars_max = 500
series_chars_max = 32
idempotency_key_chars_max = 255
# A request that has been in flight this long is presumed dead (a crashed worker): its key may be
# taken over by a retry.
idempotency_in_flight_s_max = 60
# How long a process trusts a writer key it has verified (writes re-check it in their own
# transaction; see backend.api.deps.KeyCache), and how many such keys it keeps.
writer_key_cache_s_max = 5
writer_key_cache_entries_max = 1_024

_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_RANDOM_CHARS = 24  # 24 base62 chars: ~143 bits
ID_PREFIXES = ("cus", "inv", "cn", "dn", "pay", "ent", "key", "jp", "rev")
ID_PATTERN = r"[0-9A-Za-z]{24}"


def new_id(prefix: str) -> str:
    """A fresh prefixed id, e.g. `inv_3fQ...` (prefix + `_` + 24 random base62 characters)."""
    number = int.from_bytes(secrets.token_bytes(18), "big")
    chars = []
    for _ in range(ID_RANDOM_CHARS):
        number, digit = divmod(number, 62)
        chars.append(_ID_ALPHABET[digit])
    return f"{prefix}_{''.join(chars)}"


_ID_RES = {prefix: re.compile(rf"{prefix}_{ID_PATTERN}") for prefix in ID_PREFIXES}


def is_id(value: object, prefix: str) -> bool:
    return isinstance(value, str) and _ID_RES[prefix].fullmatch(value) is not None


def now_s() -> int:
    return int(time.time())


class ServiceError(Exception):
    """A refused request: `type` is one of the API's error types, `code` is stable."""

    type = "invalid_request_error"
    code = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidRequest(ServiceError):
    pass


class NotFound(ServiceError):
    code = "resource_missing"


class Conflict(ServiceError):
    """The resource's state forbids the operation, or a uniqueness rule was hit."""

    code = "conflict"


class PermissionDenied(ServiceError):
    type = "permission_error"
    code = "permission_denied"


class AuthenticationFailed(ServiceError):
    type = "authentication_error"
    code = "api_key_invalid"
