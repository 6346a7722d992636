"""The shared text rules (app/text.py)."""

from __future__ import annotations

import pytest

from app.errors import DomainError, ErrorCode
from app.text import TextRule, check_argument, clean_text, is_invisible

NAME = TextRule(field="name", label="Names", max_length=5, required=True, allow_bidi=False)
NOTE = TextRule(
    field="note",
    label="Notes",
    max_length=10,
    multiline=True,
    too_long=ErrorCode.TEXT_TOO_LONG,
    empty=ErrorCode.EMPTY_TEXT,
)


def _refused(value: str, rule: TextRule) -> tuple[ErrorCode, str | None]:
    with pytest.raises(DomainError) as raised:
        clean_text(value, rule)
    return raised.value.code, raised.value.field


@pytest.mark.parametrize(
    "text",
    [
        "",
        " \t\n",
        "\u200b\u200c\u200d\u2060\ufeff",
        "\u3164\u115f\u1160\uffa0",
        "\u2800",
        "\u034f\ufe0f\U000e0100",
        "\u00a0\u3000\u2003",  # Zs spaces
        "\u0301\u0302",  # combining marks alone
        "\u180e\u00ad",  # Cf
    ],
)
def test_text_that_shows_nothing_is_invisible(text: str) -> None:
    assert is_invisible(text)


@pytest.mark.parametrize("text", ["a", "\u200ba", "\u2764\ufe0f", "\U0001f469\u200d\U0001f467"])
def test_text_with_something_to_see_is_not(text: str) -> None:
    assert not is_invisible(text)


def test_length_counts_characters_after_composing() -> None:
    # Five decomposed é's (10 code points) are five characters once composed (NFC).
    assert clean_text("e\u0301" * 5, NAME) == "\u00e9" * 5
    assert clean_text(" ab\n", NAME) == "ab"  # surrounding whitespace goes first


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abcdef", (ErrorCode.INVALID_INPUT, "name")),
        ("a" * 10_000, (ErrorCode.INVALID_INPUT, "name")),
        ("ab\x00", (ErrorCode.INVALID_INPUT, "name")),
        ("a\nb", (ErrorCode.INVALID_INPUT, "name")),
        ("a\u2028b", (ErrorCode.INVALID_INPUT, "name")),
        ("a\ud800", (ErrorCode.INVALID_INPUT, "name")),
        ("a\u202eb", (ErrorCode.INVALID_INPUT, "name")),
        ("\u061cab", (ErrorCode.INVALID_INPUT, "name")),
        ("\u200b", (ErrorCode.INVALID_INPUT, "name")),
    ],
    ids=["long", "huge", "nul", "newline", "line-sep", "surrogate", "rlo",
         "alm", "zwsp"],
)  # fmt: skip
def test_one_line_rule(value: str, expected: tuple[ErrorCode, str]) -> None:
    assert _refused(value, NAME) == expected


def test_multiline_rule_keeps_breaks_and_tabs_and_uses_its_codes() -> None:
    assert clean_text(" a\r\n\tb\rc ", NOTE) == "a\n\tb\nc"
    assert _refused("x" * 11, NOTE) == (ErrorCode.TEXT_TOO_LONG, "note")
    assert _refused("\u200b\n\u3164", NOTE) == (ErrorCode.INVALID_INPUT, "note")
    assert _refused("a\x0bb", NOTE) == (ErrorCode.INVALID_INPUT, "note")
    assert clean_text("", NOTE) == ""  # optional: empty is fine, invisible is not
    assert clean_text("a\u202eb", NOTE) == "a\u202eb"  # bidi controls are fine in free text


def test_required_text_that_is_empty_uses_the_empty_code() -> None:
    rule = TextRule(field="text", label="Posts", max_length=9, required=True,
                    empty=ErrorCode.EMPTY_TEXT)  # fmt: skip
    assert _refused(" \u200b ", rule) == (ErrorCode.EMPTY_TEXT, "text")


def test_query_arguments_may_be_empty_but_not_long_or_controlled() -> None:
    assert check_argument("  ", field="query", label="Queries", max_length=3) == ""
    assert check_argument(" a\tb ", field="query", label="Queries", max_length=3) == "a\tb"
    for bad in ("abcd", "a\x00"):
        with pytest.raises(DomainError) as raised:
            check_argument(bad, field="query", label="Queries", max_length=3)
        assert (raised.value.code, raised.value.field) == (ErrorCode.INVALID_INPUT, "query")
