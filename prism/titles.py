"""How a text names a catalog title: the forms a title takes in prose, and whether a text
names it. One reading for the agent's message check and the agent suite's own check."""

from __future__ import annotations

import re

_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
_ARTICLE = re.compile(r"^(.*), (The|A|An)$")
MIN_TITLE_CHARS = 4


def bare_title(title: str) -> str:
    """A catalog title without its trailing year ("Matrix, The (1999)" → "Matrix, The")."""
    return _YEAR.sub("", title).strip()


def title_forms(title: str) -> list[str]:
    """How a message may name a catalog title: without its year, and with a trailing article
    moved to the front ("Matrix, The (1999)" → "Matrix, The", "The Matrix")."""
    bare = bare_title(title)
    forms = [bare]
    if match := _ARTICLE.match(bare):
        forms.append(f"{match.group(2)} {match.group(1)}")
    return [f for f in forms if len(f) >= MIN_TITLE_CHARS]


def names(text: str, title: str) -> bool:
    """Whether ``text`` names ``title`` (any of its forms, on word boundaries, any case)."""
    return any(re.search(rf"(?<!\w){re.escape(form)}(?!\w)", text, re.IGNORECASE) for form in title_forms(title))


def without_titles(text: str, titles: list[str]) -> str:
    """``text`` with every form of ``titles`` blanked out: a picked title may contain a shorter
    candidate title, which is then no mention of that candidate."""
    for title in titles:
        for form in title_forms(title):
            text = re.sub(re.escape(form), " ", text, flags=re.IGNORECASE)
    return text
