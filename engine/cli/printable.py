"""File names (and names people typed) as one piece of one line of the CLI's output.

A file name may hold any character but "/" and NUL. A newline in one would split a listing's line in two
(a reader, or a script reading one entry per line, would see two entries), a carriage return or an
escape sequence would overwrite what the terminal shows. So every listing prints names through
`printable`: control characters (C0, DEL, C1) and the Unicode line and paragraph separators become
Python-style escapes ("\\n", "\\t", "\\x1b", "\\u2028"), and a byte that is not valid in the file
system's encoding (which Python keeps as a lone surrogate) becomes "\\xNN" of that byte. Everything else,
letters of any script included, prints as it is. A backslash is not escaped: it is Windows' folder
separator, and a name with a backslash followed by "n" is rarer than a Windows path.

`--json` output does not go through here: JSON escapes control characters itself, and its strings must
stay the exact names.
"""

from __future__ import annotations

import os
import unicodedata

#: the usual short escapes; other control characters get \xNN
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: control characters, line and paragraph separators, lone surrogates
_ESCAPED_CATEGORIES = {"Cc", "Zl", "Zp", "Cs"}
#: how Python's "surrogateescape" keeps an undecodable byte B of a file name: U+DC00 + B
_SURROGATE_ESCAPE_BASE = 0xDC00


def printable(name: str | os.PathLike) -> str:
    """`name` (a path or any text) with control characters escaped, so that it stays on its line."""
    text = os.fspath(name)
    if text.isprintable():  # the common case: nothing to escape
        return text
    return "".join(_escaped(character) for character in text)


def _escaped(character: str) -> str:
    if character in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[character]
    if unicodedata.category(character) not in _ESCAPED_CATEGORIES:
        return character  # e.g. a no-break space: not printable by Python's rule, but harmless
    code = ord(character)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of the name, kept by surrogateescape
        return f"\\x{code - _SURROGATE_ESCAPE_BASE:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
