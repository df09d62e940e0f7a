"""The fast paths of document checking (compiled type checks, a path-free canonical scan) accept
only what the slow walks accept, and give the same answer: they may pass a case on, never judge
it differently."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_samples import invoice_issued_document, payment_booked_document

from ledger import canonical, documents
from ledger.entries import DOCUMENT_TYPES, EntryKind
from ledger.errors import LedgerError

texts = st.text(max_size=6)
scalars = (
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False) | texts
    | st.just(0) | st.just("0x" + "5a" * 32) | st.just("usd")
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.tuples(children) | st.dictionaries(texts, children, max_size=3)
    ),
    max_leaves=8,
)


def _slow_scan(value: object) -> bool | None:
    try:
        return canonical._check_value(value, 0, "$")
    except LedgerError:
        return None


@settings(max_examples=600, deadline=None)
@given(values)
def test_the_canonical_scan_agrees_with_the_checked_walk(value: object) -> None:
    try:
        fast = canonical._scan(value, 0)
    except canonical._Unusual:
        return  # left to the slow walk
    assert fast == _slow_scan(value)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            found += _paths(item, (*prefix, position))
    return found


@st.composite
def mutated_documents(draw: st.DrawFn) -> tuple[Any, dict[str, Any]]:
    """A valid document's type, and the document with one place replaced, removed, or given an
    extra key."""
    document = copy.deepcopy(draw(st.sampled_from([invoice_issued_document(), payment_booked_document()])))
    hint = DOCUMENT_TYPES[EntryKind.from_document_kind(document["kind"])]
    path = draw(st.sampled_from(_paths(document)[1:]))
    parent: Any = document
    for step in path[:-1]:
        parent = parent[step]
    action = draw(st.sampled_from(["replace", "remove", "extra"]))
    if action == "replace":
        parent[path[-1]] = draw(values)
    elif action == "remove" and isinstance(parent, dict):
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(texts)] = draw(values)
    return hint, document


@settings(max_examples=800, deadline=None)
@given(mutated_documents())
def test_the_compiled_check_never_accepts_what_the_walk_refuses(case: tuple[Any, dict[str, Any]]) -> None:
    hint, document = case
    if documents._fast_check(hint)(document):
        documents.validate_value(document, hint, "$")  # must not raise


def test_valid_documents_take_the_fast_paths() -> None:
    for document in (invoice_issued_document(), payment_booked_document()):
        kind = EntryKind.from_document_kind(document["kind"])
        assert documents._fast_check(DOCUMENT_TYPES[kind])(document)
        assert canonical._scan(document, 0) is True
