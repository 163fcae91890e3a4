"""MovieLens titles as a shop would show them: "An American Tail", not the index form "American Tail, An".

MovieLens files a title under its first significant word and moves the article to the end, in the main
title and in the original or alternative title in parentheses: "Name of the Rose, The (Name der Rose,
Der)". Each part gets its article back in front; a year suffix ("(1986)") is left where it is.
"""

from __future__ import annotations

import re

# The articles MovieLens moves to the end: English, French, Spanish, Italian, German, Portuguese, Dutch and
# Scandinavian ones. Only a whole last segment after ", " counts, so "Sam, I Am" or "Hello, Dolly!" stay.
ARTICLES = (
    "The", "A", "An",
    "Le", "La", "Les", "L'", "Un", "Une",
    "El", "Los", "Las", "Una",
    "Il", "Lo", "Gli", "I",
    "Der", "Die", "Das", "Ein", "Eine",
    "O", "Os", "As",
    "De", "Het", "Een", "Den", "Det", "En", "Et", "Ett",
)
_TRAILING_ARTICLE = re.compile(r"(?P<rest>.+), (?P<article>" + "|".join(map(re.escape, ARTICLES)) + r")")
# The main title, then any number of parenthesised parts at the end (alternative titles, the year).
_PARTS = re.compile(r"(?P<main>.*?)(?P<tail>(?:\s*\([^()]*\))*)\s*")
_PAREN = re.compile(r"\(([^()]*)\)")


def _front_article(part: str) -> str:
    match = _TRAILING_ARTICLE.fullmatch(part.strip())
    if match is None:
        return part
    article, rest = match["article"], match["rest"]
    return f"{article}{rest}" if article.endswith("'") else f"{article} {rest}"


def display_title(title: str) -> str:
    """"American Tail, An (1986)" -> "An American Tail (1986)"; "Boot, Das (Boat, The)" -> "Das Boot (The
    Boat)"; "Atalante, L'" -> "L'Atalante". Titles without a trailing article come back unchanged."""
    parts = _PARTS.fullmatch(title)
    if parts is None or not parts["main"]:
        return title
    tail = _PAREN.sub(lambda m: f"({_front_article(m[1])})", parts["tail"])
    return _front_article(parts["main"]) + tail
