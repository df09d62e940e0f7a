"""The anchorer's signing key: a keystore file, the environment, or (local chain only) anvil's first account."""

from __future__ import annotations

import json

from eth_account import Account
from eth_account.signers.local import LocalAccount

from backend.settings import ANVIL_DEV_KEYS, LOCAL_CHAIN_ID, Settings


class SignerRefused(RuntimeError):
    pass


def anchorer_account(settings: Settings, chain_id: int) -> LocalAccount:
    """Load the anchorer's key; never log it; refuse anvil's public keys on any non-local chain."""
    if settings.anchorer_keystore is not None:
        keystore = json.loads(settings.anchorer_keystore.read_text())
        key = Account.decrypt(keystore, settings.anchorer_keystore_password)
        account: LocalAccount = Account.from_key(key)
    elif settings.anchorer_private_key:
        account = Account.from_key(settings.anchorer_private_key)
    elif chain_id == LOCAL_CHAIN_ID:
        account = Account.from_key(ANVIL_DEV_KEYS[0])
    else:
        raise SignerRefused(
            f"chain {chain_id} is not the local chain: set TALLY_ANCHORER_KEYSTORE (and "
            "TALLY_ANCHORER_KEYSTORE_PASSWORD) or TALLY_ANCHORER_PRIVATE_KEY"
        )
    if chain_id != LOCAL_CHAIN_ID and account.key.to_0x_hex().lower() in ANVIL_DEV_KEYS:
        raise SignerRefused(f"the anchorer key is a public anvil key: refused on chain {chain_id}")
    return account
