"""Identifiers that become parts of storage keys: validated before any I/O."""

from __future__ import annotations

import re
import unicodedata

TITLE_ID_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


def validate_title_id(value: str) -> str:
    """A title id is a lowercase ASCII slug: a-z, 0-9 and inner hyphens, 1-64 chars.

    Anything else (separators, '..', NUL, whitespace, look-alike unicode,
    upper case) is refused rather than "cleaned", so two spellings can never
    map to one title's storage.
    """
    if not isinstance(value, str) or not TITLE_ID_PATTERN.fullmatch(value):
        raise ValueError(
            f"invalid title id {_shown(value)}: use 1-64 lowercase letters, digits and inner hyphens "
            "(e.g. 'the-general-1926')"
        )
    return value


def _shown(value: object) -> str:
    """repr for an error message: one line (repr escapes controls and bidi overrides), at most ~80 chars."""
    if isinstance(value, str) and len(value) > 64:
        return f"{value[:64]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def slugify(text: str) -> str:
    """Suggest a title id from a file name: 'The General (1926).mkv' stem -> 'the-general-1926'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:64].strip("-")
    if not slug:
        raise ValueError(f"cannot derive a title id from {_shown(text)}; pass one with --title")
    return validate_title_id(slug)
