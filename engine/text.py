"""Words around numbers, the same in the CLI and the app."""

from __future__ import annotations


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """The count with its noun in the right number: plural(1, "face") -> "1 face", plural(2, "face") ->
    "2 faces", plural(3, "person", "people") -> "3 people". The noun goes last, so an adjective goes into it:
    plural(n, "new person", "new people")."""
    word = noun if count == 1 else (plural_noun or noun + "s")
    return f"{count} {word}"


def noun_for(count: int, noun: str, plural_noun: str | None = None) -> str:
    """The noun alone, in the number that fits `count` ("1 of 3 photos" agrees with 3, not 1)."""
    return noun if count == 1 else (plural_noun or noun + "s")
