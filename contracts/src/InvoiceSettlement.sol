// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {Terms} from "./Terms.sol";
import {ILedgerAnchor} from "./interfaces/ILedgerAnchor.sol";
import {MerkleLog} from "./libraries/MerkleLog.sol";
import {SettlementMath} from "./libraries/SettlementMath.sol";

/// @title InvoiceSettlement: pay an invoice exactly as the anchored ledger recorded it
/// @notice The payer hands in the invoice's terms and an inclusion proof against an anchored tree
/// head. The contract rebuilds the ledger leaf from them (docs/formats.md, "Leaf input"), checks it
/// against LedgerAnchor, refuses superseded or cancelled terms and excluded payers, computes what is
/// due now (SettlementMath), and moves the tokens straight from the payer to the payee named in the
/// terms. It never holds funds and has no owner.
/// @dev Uses transient storage (EIP-1153) for its reentrancy guard, so it needs Cancun or later.
contract InvoiceSettlement is ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice One payment: the entry that carries the terms, where it sits in the log, and how much.
    /// @param invoiceKey The invoice key, the leaf's subject.
    /// @param kind Entry kind of the leaf; one of the kinds that carry terms (1, 2, 3, 10).
    /// @param documentHash SHA-256 of the entry's canonical JSON document.
    /// @param terms The terms the leaf encodes.
    /// @param leafIndex The leaf's index (the entry's sequence number).
    /// @param treeSize An anchored tree size that includes the leaf.
    /// @param amount Token units to pay now.
    /// @param proof RFC 9162 inclusion proof of the leaf in the tree of `treeSize` leaves.
    struct PaymentRequest {
        bytes32 invoiceKey;
        uint16 kind;
        bytes32 documentHash;
        Terms terms;
        uint64 leafIndex;
        uint64 treeSize;
        uint256 amount;
        bytes32[] proof;
    }

    /// @notice The leaf-input format version this contract rebuilds.
    uint8 public constant LEAF_VERSION = 1;
    /// @notice Entry kinds that carry terms (docs/formats.md, "Entry kinds").
    uint16 public constant KIND_INVOICE_ISSUED = 1;
    uint16 public constant KIND_CREDIT_NOTE = 2;
    uint16 public constant KIND_DEBIT_NOTE = 3;
    uint16 public constant KIND_TERMS_UPDATED = 10;
    /// @notice Current terms version of a cancelled invoice (as in LedgerAnchor).
    uint32 public constant TERMS_VERSION_CANCELLED = type(uint32).max;
    /// @notice Most payments one `payBatch` call may carry.
    uint256 public constant BATCH_SIZE_MAX = 64;

    ILedgerAnchor private immutable _ledgerAnchor;
    mapping(bytes32 invoiceKey => uint256 amount) private _paid;

    /// @notice An invoice was paid (in full or in part).
    /// @param totalPaid Cumulative amount paid on-chain under this invoice key, this payment included.
    /// @param termsVersion The terms version the payment was made under.
    event InvoicePaid(
        bytes32 indexed invoiceKey,
        address indexed payer,
        address indexed token,
        address payee,
        uint256 amount,
        uint256 totalPaid,
        uint32 termsVersion
    );

    /// @notice The constructor got a zero LedgerAnchor address.
    error InvoiceSettlementZeroAddress();
    /// @notice The entry kind does not carry terms, so it cannot be paid.
    error InvoiceSettlementKindWithoutTerms(uint16 kind);
    /// @notice The terms name a payer and the caller is someone else.
    error InvoiceSettlementPayerExcluded(bytes32 invoiceKey, address payer);
    /// @notice A payment of zero.
    error InvoiceSettlementZeroAmount(bytes32 invoiceKey);
    /// @notice `treeSize` was never anchored.
    error InvoiceSettlementTreeSizeNotAnchored(uint64 treeSize);
    /// @notice The invoice was voided or written off.
    error InvoiceSettlementInvoiceCancelled(bytes32 invoiceKey);
    /// @notice The terms version is not the current one for this invoice (superseded, or newer than
    /// the version the anchor has recorded so far).
    error InvoiceSettlementTermsSuperseded(bytes32 invoiceKey, uint32 termsVersion, uint32 currentVersion);
    /// @notice The rebuilt leaf is not in the anchored tree (wrong terms, payee, token, index or proof).
    error InvoiceSettlementNotIncluded(bytes32 invoiceKey, uint64 leafIndex, uint64 treeSize);
    /// @notice Nothing is left to pay on this invoice.
    error InvoiceSettlementAlreadyPaid(bytes32 invoiceKey, uint256 totalPaid);
    /// @notice The payment exceeds what is left to pay now.
    error InvoiceSettlementOverpayment(bytes32 invoiceKey, uint256 amount, uint256 remaining);
    /// @notice The payment is less than what is left and the terms do not allow partial payment.
    error InvoiceSettlementPartialNotAllowed(bytes32 invoiceKey, uint256 amount, uint256 remaining);
    /// @notice msg.value does not match the native-coin amounts being paid.
    error InvoiceSettlementValueMismatch(uint256 value, uint256 nativeAmount);
    /// @notice The payee's token balance grew by less (or more) than the amount (e.g. fee-on-transfer).
    error InvoiceSettlementTransferMismatch(address token, uint256 amount, uint256 received);
    /// @notice Forwarding the native coin to the payee failed.
    error InvoiceSettlementNativeTransferFailed(address payee, uint256 amount);
    /// @notice A batch was empty or larger than BATCH_SIZE_MAX.
    error InvoiceSettlementBatchSize(uint256 count, uint256 countMax);

    /// @param ledgerAnchor_ The LedgerAnchor whose heads payments are checked against.
    constructor(ILedgerAnchor ledgerAnchor_) {
        if (address(ledgerAnchor_) == address(0)) revert InvoiceSettlementZeroAddress();
        _ledgerAnchor = ledgerAnchor_;
    }

    /// @notice Pays one invoice: `request.amount` goes from the caller to `request.terms.payee`.
    /// @dev For the native coin (terms.token == address(0)) msg.value must equal the amount; for an
    /// ERC-20 it must be zero and the caller must have approved this contract.
    function pay(PaymentRequest calldata request) external payable nonReentrant {
        address token = request.terms.token;
        uint256 nativeAmount = token == address(0) ? request.amount : 0;
        if (msg.value != nativeAmount) revert InvoiceSettlementValueMismatch(msg.value, nativeAmount);
        _record(request);
        _collect(token, request.terms.payee, request.amount);
    }

    /// @notice Pays several invoices in one transaction, each checked as `pay` checks it.
    /// @dev Consecutive requests with the same (token, payee) are collected with one transfer, so
    /// sort by (token, payee) for the cheapest batch. msg.value must equal the sum of the
    /// native-coin amounts. Paying one invoice twice in a batch counts both against what is due.
    function payBatch(PaymentRequest[] calldata requests) external payable nonReentrant {
        uint256 count = requests.length;
        if (count == 0 || count > BATCH_SIZE_MAX) revert InvoiceSettlementBatchSize(count, BATCH_SIZE_MAX);
        uint256 nativeAmount = 0;
        for (uint256 i = 0; i < count; ++i) {
            if (requests[i].terms.token == address(0)) nativeAmount += requests[i].amount;
        }
        if (msg.value != nativeAmount) revert InvoiceSettlementValueMismatch(msg.value, nativeAmount);

        address runToken = requests[0].terms.token;
        address runPayee = requests[0].terms.payee;
        uint256 runAmount = 0;
        for (uint256 i = 0; i < count; ++i) {
            PaymentRequest calldata request = requests[i];
            _record(request);
            address token = request.terms.token;
            address payee = request.terms.payee;
            if (token != runToken || payee != runPayee) {
                _collect(runToken, runPayee, runAmount);
                (runToken, runPayee, runAmount) = (token, payee, 0);
            }
            runAmount += request.amount;
        }
        _collect(runToken, runPayee, runAmount);
    }

    /// @notice Cumulative amount paid on-chain under `invoiceKey`.
    function paidOf(bytes32 invoiceKey) external view returns (uint256) {
        return _paid[invoiceKey];
    }

    /// @notice What `terms` ask to be paid now (block.timestamp), before deducting payments.
    function amountDueNow(Terms calldata terms) external view returns (uint256) {
        return SettlementMath.amountDueAt(terms, block.timestamp);
    }

    /// @notice What is left to pay now on `invoiceKey` under `terms`.
    function remainingNow(bytes32 invoiceKey, Terms calldata terms) external view returns (uint256) {
        return SettlementMath.remainingAt(terms, block.timestamp, _paid[invoiceKey]);
    }

    /// @notice The LedgerAnchor this contract checks payments against.
    function ledgerAnchor() external view returns (ILedgerAnchor) {
        return _ledgerAnchor;
    }

    /// @notice The leaf hash of a terms-carrying entry, exactly as ledger/ builds it:
    /// SHA-256(0x00 || abi.encode(uint8(1), kind, leafIndex, invoiceKey, documentHash, terms)).
    /// @dev Assembled in assembly to copy the 12 terms words straight from calldata instead of
    /// encoding them twice (abi.encode, then abi.encodePacked with the prefix). The words are
    /// hashed as sent: a non-canonical encoding (dirty high bits) hashes differently from every
    /// leaf ledger/ writes, so it can never pass the inclusion check.
    function leafHashOf(
        uint16 kind,
        uint64 leafIndex,
        bytes32 invoiceKey,
        bytes32 documentHash,
        Terms calldata terms
    ) public view returns (bytes32 leafHash) {
        uint8 leafVersion = LEAF_VERSION;
        assembly ("memory-safe") {
            // 1 prefix byte + 17 words = 545 bytes in free memory (scratch; the pointer stays).
            let buffer := mload(0x40)
            mstore8(buffer, 0x00)
            mstore(add(buffer, 0x01), leafVersion)
            mstore(add(buffer, 0x21), kind)
            mstore(add(buffer, 0x41), leafIndex)
            mstore(add(buffer, 0x61), invoiceKey)
            mstore(add(buffer, 0x81), documentHash)
            calldatacopy(add(buffer, 0xa1), terms, 0x180)
            // The SHA-256 precompile only fails when it runs out of gas.
            if iszero(staticcall(gas(), 0x02, buffer, 0x221, 0x00, 0x20)) { revert(0x00, 0x00) }
            leafHash := mload(0x00)
        }
    }

    /// @dev Checks one request against the terms, the anchored log and what was paid, then books it.
    /// Effects only; the caller moves the tokens afterwards (checks-effects-interactions).
    function _record(PaymentRequest calldata request) private {
        Terms calldata terms = request.terms;
        bytes32 invoiceKey = request.invoiceKey;
        uint16 kind = request.kind;
        if (kind != KIND_INVOICE_ISSUED && kind != KIND_CREDIT_NOTE && kind != KIND_DEBIT_NOTE && kind != KIND_TERMS_UPDATED) {
            revert InvoiceSettlementKindWithoutTerms(kind);
        }
        if (terms.payer != address(0) && terms.payer != msg.sender) {
            revert InvoiceSettlementPayerExcluded(invoiceKey, terms.payer);
        }
        uint256 amount = request.amount;
        if (amount == 0) revert InvoiceSettlementZeroAmount(invoiceKey);

        _checkAnchored(request);

        uint256 paid = _paid[invoiceKey];
        uint256 remaining = SettlementMath.remainingAt(terms, block.timestamp, paid);
        if (remaining == 0) revert InvoiceSettlementAlreadyPaid(invoiceKey, paid);
        if (amount > remaining) revert InvoiceSettlementOverpayment(invoiceKey, amount, remaining);
        if (amount < remaining && !terms.partialAllowed) {
            revert InvoiceSettlementPartialNotAllowed(invoiceKey, amount, remaining);
        }
        // paid + amount <= due, which SettlementMath computed without overflow.
        uint256 totalPaid;
        unchecked {
            totalPaid = paid + amount;
        }
        _paid[invoiceKey] = totalPaid;
        emit InvoicePaid(invoiceKey, msg.sender, terms.token, terms.payee, amount, totalPaid, terms.version);
    }

    /// @dev The request's terms are current and its rebuilt leaf is in an anchored tree.
    function _checkAnchored(PaymentRequest calldata request) private view {
        bytes32 invoiceKey = request.invoiceKey;
        (bytes32 root, uint32 currentVersion) = _ledgerAnchor.rootAndTermsVersion(request.treeSize, invoiceKey);
        if (root == bytes32(0)) revert InvoiceSettlementTreeSizeNotAnchored(request.treeSize);
        if (currentVersion == TERMS_VERSION_CANCELLED) revert InvoiceSettlementInvoiceCancelled(invoiceKey);
        // No version recorded yet means version 1: a later version is payable only once the anchor
        // that carries its TermsUpdate has landed, so two versions are never payable at once.
        if (currentVersion == 0) currentVersion = 1;
        uint32 version = request.terms.version;
        if (version != currentVersion) {
            revert InvoiceSettlementTermsSuperseded(invoiceKey, version, currentVersion);
        }
        bytes32 leafHash =
            leafHashOf(request.kind, request.leafIndex, invoiceKey, request.documentHash, request.terms);
        if (!MerkleLog.verifyInclusion(request.leafIndex, request.treeSize, leafHash, request.proof, root)) {
            revert InvoiceSettlementNotIncluded(invoiceKey, request.leafIndex, request.treeSize);
        }
    }

    /// @dev Moves `amount` of `token` from the caller to `payee` and checks the payee got exactly it.
    function _collect(address token, address payee, uint256 amount) private {
        if (token == address(0)) {
            (bool sent,) = payee.call{value: amount}("");
            if (!sent) revert InvoiceSettlementNativeTransferFailed(payee, amount);
            return;
        }
        IERC20 erc20 = IERC20(token);
        uint256 balanceBefore = erc20.balanceOf(payee);
        erc20.safeTransferFrom(msg.sender, payee, amount);
        uint256 balanceAfter = erc20.balanceOf(payee);
        uint256 received = balanceAfter > balanceBefore ? balanceAfter - balanceBefore : 0;
        if (received != amount) revert InvoiceSettlementTransferMismatch(token, amount, received);
    }
}
