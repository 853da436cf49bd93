"""Text for the terminal: strings that come from files (a model's record and
vocabulary, file names) are escaped before they are printed, so a crafted
file cannot move the cursor, rewrite the screen or hide text.
"""

from __future__ import annotations

import re

# C0 and C1 control characters but newline and tab, DEL, the bidirectional
# overrides and isolates, and lone surrogates (undecodable file-name bytes).
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, newlines: bool = True) -> str:
    """`text` with every character that could act on a terminal written as a
    visible escape (`\\x1b`, `\\u202e`); newlines and tabs stay unless
    `newlines` is false (for one-line fields)."""
    text = _UNSAFE.sub(_escape, text)
    if not newlines:
        text = text.replace("\n", "\\n").replace("\t", "\\t")
    return text


def count(number: int, plural: str) -> str:
    """A count with its unit, as messages write it: "1 word", "2,500 words"
    (`plural` ends in a plain "s": words, characters, epochs, lines)."""
    return f"{number:,} {plural[:-1] if number == 1 else plural}"
