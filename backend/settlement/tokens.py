"""The token registry: which ERC-20 on which chain stands for which currency, with its decimals.

One token per (chain, currency) is the default: new invoices in that currency are issued in it
(`apply_settlement_default`, called by the invoices service at finalize). Amounts convert between
currency minor units and token units exactly (`ledger.money`) or not at all. A payment in a token
that is not registered for the invoice's currency never reaches an invoice: it goes to suspense.

On the local chain the deployed TestStablecoin is registered as the default "usd" token
(`ensure_local_tokens`) when the reconciler starts and when `tally demo` deploys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from backend.models import Invoice, SettlementToken
from backend.services.common import Conflict, InvalidRequest, NotFound, new_id, now_s
from ledger.hexutil import ZERO_ADDRESS, normalize_address
from ledger.money import currency_code, currency_exponent, from_token_units, to_token_units

REGISTRY_ID_PREFIX = "tok"
tokens_listed_max = 500
token_decimals_max = 77  # 10**77 < 2**256: one whole token still fits a uint256
LOCAL_STABLECOIN = ("TestStablecoin", "usd", 6, "tUSD")  # artifact name, currency, decimals, symbol


def _check_decimals(decimals: int) -> int:
    if type(decimals) is not int or not 0 <= decimals <= token_decimals_max:
        raise InvalidRequest(f"decimals must be an int in [0, {token_decimals_max}]", param="decimals")
    return decimals


def get_token(session: Session, *, token_id: str) -> SettlementToken:
    row = None
    if isinstance(token_id, str) and token_id.startswith(REGISTRY_ID_PREFIX + "_") and len(token_id) <= 40:
        row = session.scalars(select(SettlementToken).where(SettlementToken.id == token_id)).one_or_none()
    if row is None:
        raise NotFound(f"no settlement token {token_id}", param="id")
    return row


def list_tokens(
    session: Session, *, chain_id: int | None = None, include_disabled: bool = False
) -> list[SettlementToken]:
    statement = select(SettlementToken)
    if chain_id is not None:
        statement = statement.where(SettlementToken.chain_id == chain_id)
    if not include_disabled:
        statement = statement.where(SettlementToken.disabled_at.is_(None))
    return list(session.scalars(statement.order_by(SettlementToken.pk).limit(tokens_listed_max)))


def _set_default(session: Session, row: SettlementToken) -> None:
    """Make `row` the one default of its (chain, currency)."""
    session.execute(
        update(SettlementToken)
        .where(SettlementToken.chain_id == row.chain_id, SettlementToken.currency == row.currency,
               SettlementToken.id != row.id)
        .values(is_default=False)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    row.is_default = True


def register_token(
    session: Session,
    *,
    chain_id: int,
    address: str,
    currency: str,
    decimals: int,
    symbol: str | None = None,
    is_default: bool | None = None,
) -> SettlementToken:
    """Register a token (or re-enable the same one). The first token of a (chain, currency) is its
    default unless `is_default=False`. A registered address keeps its currency and decimals:
    changing them would re-value payments already booked (`token_already_registered`)."""
    address = normalize_address(address, "address")
    if address == ZERO_ADDRESS:
        raise InvalidRequest("the zero address is not an ERC-20 token", code="token_invalid", param="address")
    currency = currency_code(currency)
    decimals = _check_decimals(decimals)
    if type(chain_id) is not int or chain_id <= 0:
        raise InvalidRequest("chain_id must be a positive int", param="chain_id")
    row = session.scalars(
        select(SettlementToken).where(SettlementToken.chain_id == chain_id, SettlementToken.address == address)
        .with_for_update()
    ).one_or_none()  # fmt: skip
    if row is not None:
        if (row.currency, row.decimals) != (currency, decimals):
            raise Conflict(
                f"{address} on chain {chain_id} is registered as {row.currency} with {row.decimals} decimals",
                code="token_already_registered",
                param="address",
            )
        row.disabled_at = None
        if symbol is not None:
            row.symbol = symbol
    else:
        row = SettlementToken(id=new_id(REGISTRY_ID_PREFIX), chain_id=chain_id, address=address, currency=currency,
                              decimals=decimals, symbol=symbol, is_default=False, created=now_s())  # fmt: skip
        session.add(row)
        session.flush()
    has_default = session.scalar(
        select(SettlementToken.id).where(
            SettlementToken.chain_id == chain_id, SettlementToken.currency == currency,
            SettlementToken.is_default.is_(True), SettlementToken.disabled_at.is_(None), SettlementToken.id != row.id)
        .limit(1)
    )  # fmt: skip
    if is_default or (is_default is None and not has_default and not row.is_default):
        _set_default(session, row)
    elif is_default is False:
        row.is_default = False
    return row


def update_token(
    session: Session, *, token_id: str, is_default: bool | None = None, symbol: str | None = None
) -> SettlementToken:
    row = get_token(session, token_id=token_id)
    if row.disabled_at is not None:
        raise Conflict(f"token {row.id} is disabled; register it again first", code="token_disabled")
    if symbol is not None:
        row.symbol = symbol
    if is_default:
        _set_default(session, row)
    elif is_default is False:
        row.is_default = False
    return row


def disable_token(session: Session, *, token_id: str) -> SettlementToken:
    """Stop issuing invoices in it and stop matching its payments (they go to suspense). Kept, not
    deleted: chain payments already booked refer to it."""
    row = get_token(session, token_id=token_id)
    if row.disabled_at is None:
        row.disabled_at, row.is_default = now_s(), False
    return row


def token_at(session: Session, chain_id: int, address: str) -> SettlementToken | None:
    """The enabled registry entry for a token address on a chain, or None."""
    return session.scalars(
        select(SettlementToken).where(SettlementToken.chain_id == chain_id, SettlementToken.address == address.lower(),
                                      SettlementToken.disabled_at.is_(None))
    ).one_or_none()  # fmt: skip


_PRELOADED = "default_tokens_by_currency"  # session.info: currency -> its one default token, or None


def default_token_join(currency: Any) -> Any:
    """The ON clause that joins the default tokens of a `currency` column's currencies
    (`preload_default_tokens` takes what such a join found)."""
    return and_(SettlementToken.currency == currency, *_IS_DEFAULT)


_IS_DEFAULT = (SettlementToken.is_default.is_(True), SettlementToken.disabled_at.is_(None))


def preload_default_tokens(session: Session, found: dict[str, set[SettlementToken]]) -> None:
    """Remember, for this session's transaction, the default tokens a query already read per
    currency (`default_tokens` then asks no more for them). A currency with several defaults is
    not remembered: `default_tokens` reads it again and refuses it."""
    known: dict[str, SettlementToken | None] = session.info.setdefault(_PRELOADED, {})
    for currency, tokens in found.items():
        if len(tokens) <= 1:
            known[currency] = next(iter(tokens), None)


def default_tokens(session: Session, currencies: Sequence[str]) -> dict[str, SettlementToken]:
    """The default token of each currency. A Tally instance settles on one chain; a currency with
    defaults on several chains is ambiguous and refused (`token_ambiguous`)."""
    known: dict[str, SettlementToken | None] = session.info.get(_PRELOADED, {})
    if all(currency in known for currency in currencies):
        return {currency: token for currency in currencies if (token := known[currency]) is not None}
    rows = session.scalars(select(SettlementToken).where(SettlementToken.currency.in_(sorted(set(currencies))),
                                                         *_IS_DEFAULT))  # fmt: skip
    found: dict[str, SettlementToken] = {}
    for row in rows:
        if row.currency in found:
            raise Conflict(
                f"{row.currency} has default tokens on chains {found[row.currency].chain_id} and {row.chain_id}",
                code="token_ambiguous",
                param="currency",
            )
        found[row.currency] = row
    return found


def settlement_defaults(session: Session, invoices: Sequence[Invoice]) -> dict[str, SettlementToken]:
    """The registry's default token of each currency among the drafts `apply_settlement_default`
    would fill in (one query for them all)."""
    pending = [row.currency for row in invoices if not row.settlement and row.status == "draft"]
    return default_tokens(session, pending) if pending else {}


def apply_settlement_default(row: Invoice, defaults: dict[str, SettlementToken]) -> None:
    """Give a draft without an explicit `settlement` the registry's default token for its
    currency (chain, token, decimals), so its terms ask for that token. Drafts in a currency
    without a registered token keep the service's fallback (token zero, currency decimals)."""
    if row.settlement or row.status != "draft":
        return
    token = defaults.get(row.currency)
    if token is None:
        return
    # Exact or refused: a token with fewer decimals than the currency may not hold the total.
    to_token_units(row.total_minor, currency_exponent(row.currency), token.decimals)
    row.settlement = {"chain_id": token.chain_id, "token": token.address, "token_decimals": token.decimals,
                      "payee": None}  # fmt: skip


def minor_from_token(token: SettlementToken, amount_token: int) -> int:
    """Token units -> currency minor units, exactly (`InexactConversion` otherwise)."""
    return from_token_units(amount_token, currency_exponent(token.currency), token.decimals)


def ensure_local_tokens(session: Session, chain_id: int, addresses: dict[str, str]) -> SettlementToken | None:
    """Register the local chain's TestStablecoin as "usd" (idempotent); None without one."""
    name, currency, decimals, symbol = LOCAL_STABLECOIN
    address = addresses.get(name)
    if not address:
        return None
    existing = token_at(session, chain_id, address)
    if existing is not None:
        return existing
    return register_token(session, chain_id=chain_id, address=address, currency=currency, decimals=decimals,
                          symbol=symbol)  # fmt: skip


def render(row: SettlementToken) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "settlement_token",
        "chain_id": row.chain_id,
        "address": row.address,
        "currency": row.currency,
        "decimals": row.decimals,
        "symbol": row.symbol,
        "is_default": row.is_default,
        "created": row.created,
        "disabled_at": row.disabled_at,
    }
