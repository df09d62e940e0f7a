"""canonical_json equals the rfc8785 library's bytes on both of its paths, for any document value."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical_json
from ledger.errors import InvalidDocument

# Any Unicode scalar value (surrogates excluded: they have no UTF-8 form), control characters,
# U+2028/U+2029 and characters above U+FFFF included.
texts = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)
scalars = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | texts
values = st.recursive(
    scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=1_000, deadline=None)
@given(values)
def test_canonical_json_is_rfc8785(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "document",
    [
        {"\U0001f600": 1, "\uffff": 2, "a": 3},  # UTF-16 order puts the emoji (a surrogate pair) first
        {"outer": {"\U00010000x": True, "\ue000": None}},
        {"k": ["\u2028\u2029", "\x00\x1f\x7f", '"\\/', "\U0001f600"]},
    ],
)
def test_keys_beyond_the_bmp_and_awkward_strings(document: dict[str, object]) -> None:
    assert canonical_json(document) == rfc8785.dumps(document)


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(InvalidDocument):
        canonical_json({"k": "\ud800"})
