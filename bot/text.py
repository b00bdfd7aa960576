"""Normalising what people type: full-width to half-width, stray spaces folded."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFKC (full-width digits, letters, colons and spaces become half-width), spaces folded."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def clean_name(text: str) -> str:
    """A name or branch name without stray (also full-width and no-break) spaces at its ends."""
    return text.replace("\u3000", " ").replace("\xa0", " ").strip()
