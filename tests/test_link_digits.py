"""Links whose numbers use non-ASCII digits or separators: every numeric query field gives its own message
(str.isdigit() takes '²', which int() refuses, and int() takes '٣' and '１', which a link must not)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from gnet.spec import SpecError, block_presets
from gnet.urlstate import _INTS, design_from_query, design_to_query
from tests.fuzzing import fuzz_settings
from tests.pagetest import texts

GOOD = design_to_query(block_presets()["Paper 3a"])
UNICODE_NUMBERS = [
    "²",  # superscript two: isdigit() but not int()
    "6²",
    "٦٤",  # Arabic-Indic 64: int() reads it
    "６４",  # fullwidth 64
    "६४",  # Devanagari 64
    "\u00a064",  # no-break space before: str.strip() would drop it
    "64\u2003",  # em space after
    "6\u20094",  # thin space as a thousands separator
    "6\u200b4",  # zero-width space
    "6_4",  # int() takes underscores
    "6,4",
    "+64",
    "Ⅻ",  # roman numeral twelve (isnumeric)
    "½",
]


@pytest.mark.parametrize("prefix", ["", "a"])
@pytest.mark.parametrize("key", list(_INTS))
@pytest.mark.parametrize("value", UNICODE_NUMBERS)
def test_every_numeric_field_refuses_non_ascii_digits_with_its_name(key, value, prefix):
    params = {prefix + k: v for k, v in {**GOOD, key: value}.items()}
    with pytest.raises(SpecError) as e:
        design_from_query(params, prefix=prefix)
    assert f"link parameter {key} ({_INTS[key]}) must be a whole number written with the digits 0-9" in str(e.value)


def test_ascii_digits_and_ascii_spaces_still_read():
    assert design_from_query({**GOOD, "b1": " 64\t"}).block.b1 == 64


@fuzz_settings(150)
@given(
    key=st.sampled_from(list(_INTS)),
    text=st.text(st.characters(categories=["Nd", "No", "Nl", "Zs", "Cf"]), min_size=1, max_size=6),
)
def test_fuzz_unicode_digits_and_separators_are_refused_or_plain_ascii(key, text):
    stripped = text.strip(" \t\r\n")
    ascii_number = stripped.isascii() and stripped.isdigit() and len(stripped) <= 9
    try:
        design = design_from_query({**GOOD, key: text})
    except SpecError as e:
        if not ascii_number:  # a range error of BlockSpec is the answer only to a number read in ASCII
            assert str(e).startswith(f"link parameter {key} ({_INTS[key]}) must be a whole number written")
    else:  # accepted: only ASCII digits (and ASCII spaces around them) may have been read
        assert ascii_number and design is not None


def test_the_block_designer_names_the_field_of_a_unicode_digit():
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "pages" / "block_designer.py"))
    at.query_params.update({**GOOD, "b1": "²"})
    at.run(timeout=60)
    assert not at.exception
    errors = texts(at, "error")
    assert "link parameter b1 (b1) must be a whole number written with the digits 0-9, got '²'" in errors, errors
