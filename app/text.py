"""The rules every piece of text from a client goes through, in one place: a length limit
checked before any database or search work, no control characters (PostgreSQL cannot store
NUL; SQLite could, so both refuse it alike), no lone surrogates (they cannot be encoded),
and, where asked, no bidirectional overrides and no text made only of invisible characters.

Services name each field's rule once (a `TextRule`) and call `clean_text`; a rule carries the
error codes its field reports, so each mutation keeps its own codes.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from app.errors import DomainError, ErrorCode

# Shown as nothing (or as blank space) although they are not whitespace to str.strip():
# zero-width characters, Hangul fillers, the braille blank, the combining grapheme joiner and
# variation selectors. Categories Cf, Zs and Mn are invisible on their own as well.
INVISIBLE = frozenset(
    "\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u2060\u2800\u3164\ufeff\uffa0"
    "\u2061\u2062\u2063\u2064"
) | frozenset(chr(c) for c in (*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)))
_INVISIBLE_CATEGORIES = frozenset(("Cf", "Zs", "Mn"))

# Characters that reorder the text around them: in a name they can make it read as another.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)

# Search text (accounts, hashtags, posts) longer than this is refused before any search.
SEARCH_QUERY_MAX = 256

# Control characters allowed in multi-line text (posts, bios): line breaks and tabs.
_MULTILINE_CONTROLS = frozenset("\n\t")


def is_invisible(text: str) -> bool:
    """Whether `text` shows nothing: empty, or only whitespace and invisible characters."""
    return all(
        ch.isspace() or ch in INVISIBLE or unicodedata.category(ch) in _INVISIBLE_CATEGORIES
        for ch in text
    )


def has_forbidden_chars(text: str, *, multiline: bool = False) -> bool:
    """Control characters (but line breaks and tabs in multi-line text), line and paragraph
    separators in one-line text, and lone surrogates."""
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cc" and not (multiline and ch in _MULTILINE_CONTROLS):
            return True
        if category == "Cs" or (category in ("Zl", "Zp") and not multiline):
            return True
    return False


def has_lone_surrogates(text: str) -> bool:
    """Whether `text` holds a surrogate code point alone (it cannot be encoded as UTF-8)."""
    return any(unicodedata.category(ch) == "Cs" for ch in text)


def has_bidi_controls(text: str) -> bool:
    return any(ch in BIDI_CONTROLS for ch in text)


@dataclass(frozen=True, slots=True)
class TextRule:
    """How one input field's text is checked, and the codes it reports.

    `label` starts the messages ("Posts", "Display names"); `required` refuses text that is
    empty or only invisible characters; `multiline` allows line breaks and tabs."""

    field: str
    label: str
    max_length: int
    required: bool = False
    multiline: bool = False
    allow_bidi: bool = True
    # Optional text made only of invisible characters is refused too (it would show blank).
    refuse_invisible: bool = True
    too_long: ErrorCode = ErrorCode.INVALID_INPUT
    empty: ErrorCode = ErrorCode.INVALID_INPUT
    invalid: ErrorCode = ErrorCode.INVALID_INPUT


def clean_text(value: str, rule: TextRule) -> str:
    """`value` normalised (NFC, line breaks as \\n, no surrounding whitespace) if it passes
    `rule`; a DomainError with the rule's code and field if not. The length is checked on the
    raw value first, so an oversized one costs nothing more."""
    # NFC can shorten text (combining marks compose) and stripping removes padding; a value
    # several times the limit cannot become short enough, so it is refused unread.
    if len(value) > 4 * rule.max_length + 64:
        raise _too_long(rule)
    text = unicodedata.normalize("NFC", value)
    if rule.multiline:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.strip()
    if len(text) > rule.max_length:
        raise _too_long(rule)
    if has_forbidden_chars(text, multiline=rule.multiline):
        raise DomainError(
            rule.invalid,
            f"{rule.label} cannot contain control characters"
            + (" (line breaks and tabs are fine)." if rule.multiline else "."),
            rule.field,
        )
    if not rule.allow_bidi and has_bidi_controls(text):
        raise DomainError(
            rule.invalid,
            f"{rule.label} cannot contain bidirectional override characters.",
            rule.field,
        )
    if (rule.required or (text and rule.refuse_invisible)) and is_invisible(text):
        raise DomainError(
            rule.empty if rule.required else rule.invalid,
            f"{rule.label} need some visible characters.",
            rule.field,
        )
    return text


def _too_long(rule: TextRule) -> DomainError:
    return DomainError(
        rule.too_long, f"{rule.label} are at most {rule.max_length} characters.", rule.field
    )


def check_argument(value: str, *, field: str, label: str, max_length: int) -> str:
    """A query argument (search text, a tag): at most `max_length` characters and no control
    characters but whitespace, else INVALID_INPUT for `field`. Returned stripped; it may be
    empty (the caller decides what an empty query finds)."""
    return clean_text(
        value,
        TextRule(
            field=field,
            label=label,
            max_length=max_length,
            multiline=True,
            refuse_invisible=False,
        ),
    )


def fold(value: str) -> str:
    """NFKC_Casefold, as Unicode defines it for identifiers: full-width, compatibility and
    upper-case spellings of a character all become one."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())
