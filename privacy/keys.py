"""The shared vocabulary: where products of different shops meet (docs/privacy.md, "Normalised keys").

A product's key is, in this order of preference:
1. `gtin:<14 digits>` when its attributes carry a GTIN/EAN/UPC with a valid check digit (zero-padded to
   GTIN-14, so an EAN-13 and the same UPC-A meet);
2. `bc:<brand>|<category path>` when it has both a brand and a category path;
3. `t:<title tokens>`: the title's distinct word tokens (accents folded, lower case, stop words and
   one-character tokens dropped), sorted, at most MAX_TITLE_TOKENS of them; None when none is left.
A category's key is `c:<category path>`, each level normalised like a brand.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

GTIN_ATTRIBUTES = ("gtin", "gtin14", "gtin13", "gtin12", "gtin8", "ean", "ean13", "upc", "barcode")
MAX_TITLE_TOKENS = 8
_STOP_WORDS = frozenset({
    "a", "an", "and", "the", "of", "for", "with", "in", "on", "to", "by", "from", "at", "or",
    "de", "la", "le", "les", "der", "die", "das", "und", "et", "en", "x",
})
_NON_WORD = re.compile(r"[^0-9a-z]+")
_SPACES = re.compile(r"\s+")


def _fold(text: str) -> str:
    """Lower case, accents removed, anything but letters and digits turned into single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return _SPACES.sub(" ", _NON_WORD.sub(" ", ascii_text)).strip()


def valid_gtin(raw: Any) -> str | None:
    """The GTIN-14 form of an 8, 12, 13 or 14 digit code whose check digit holds; else None."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        return None
    digits = re.sub(r"[\s-]", "", raw)
    if not digits.isdigit() or len(digits) not in (8, 12, 13, 14):
        return None
    code = digits.zfill(14)
    # GS1 check digit: weights 3 and 1 alternating from the right, the check digit excluded.
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(code[:-1])))
    if (10 - total % 10) % 10 != int(code[-1]) or set(code) == {"0"}:
        return None
    return code


def category_key(category_path: Sequence[Any] | None) -> str | None:
    levels = [_fold(str(level)) for level in (category_path or []) if str(level).strip()]
    levels = [level for level in levels if level]
    return "c:" + "/".join(levels) if levels else None


def title_tokens(title: str) -> list[str]:
    tokens = {t for t in _fold(title or "").split(" ") if len(t) > 1 and t not in _STOP_WORDS}
    return sorted(tokens)[:MAX_TITLE_TOKENS]


def product_key(
    *, title: str, brand: str = "", category_path: Sequence[Any] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> str | None:
    """The normalised key of one product (the module's docstring gives the order)."""
    attributes = attributes or {}
    lowered = {str(k).lower(): v for k, v in attributes.items()}
    for name in GTIN_ATTRIBUTES:
        code = valid_gtin(lowered.get(name))
        if code:
            return f"gtin:{code}"
    folded_brand = _fold(brand or "")
    category = category_key(category_path)
    if folded_brand and category:
        return f"bc:{folded_brand}|{category.removeprefix('c:')}"
    tokens = title_tokens(title)
    return "t:" + " ".join(tokens) if tokens else None


def content_tokens(*, title: str, brand: str = "", category_path: Sequence[Any] | None = None) -> list[str]:
    """What the shared cold-start model reads of a product (privacy/shared_model.py): its title tokens
    (`w:`), its brand (`b:`) and every prefix of its category path (`c:`), normalised like the keys so that
    the same product in two shops reads the same. No GTIN: a code says nothing about an unseen product."""
    tokens = [f"w:{t}" for t in title_tokens(title)]
    folded_brand = _fold(brand or "")
    if folded_brand:
        tokens.append(f"b:{folded_brand}")
    levels = (category_key(category_path) or "c:").removeprefix("c:").split("/")
    tokens += ["c:" + "/".join(levels[: i + 1]) for i in range(len(levels)) if levels[i]]
    return tokens
