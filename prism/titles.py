"""How a text names a catalog title: the forms a title takes in prose, and whether a text
names it. One reading for the agent's message check and the agent suite's own check."""

from __future__ import annotations

import re
import weakref

_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
_ALTERNATE = re.compile(r"\s*\([^)]*\)\s*$")
_ARTICLE = re.compile(r"^(.*), (The|A|An)$")
MIN_TITLE_CHARS = 4


def bare_title(title: str) -> str:
    """A catalog title without its trailing year ("Matrix, The (1999)" → "Matrix, The")."""
    return _YEAR.sub("", title).strip()


def title_forms(title: str) -> list[str]:
    """How a message may name a catalog title: without its year, with a trailing article moved
    to the front ("Matrix, The (1999)" → "Matrix, The", "The Matrix"), and without an alternate
    name in brackets ("Return of Martin Guerre, The (Retour de Martin Guerre, Le) (1982)" → also
    "Return of Martin Guerre, The", "The Return of Martin Guerre"). The last form is the one
    prose uses (:func:`display_title`)."""
    bare = bare_title(title)
    names = [bare]
    if (short := _ALTERNATE.sub("", bare).strip()) and short != bare:
        names.append(short)
    forms = []
    for name in names:
        forms.append(name)
        if match := _ARTICLE.match(name):
            forms.append(f"{match.group(2)} {match.group(1)}")
    return [f for f in forms if len(f) >= MIN_TITLE_CHARS]


def display_title(title: str) -> str:
    """How prose names a catalog title: without its year, a trailing article moved to the front
    ("Full Monty, The (1997)" → "The Full Monty")."""
    forms = title_forms(title)
    return forms[-1] if forms else bare_title(title)


def mention(text: str, title: str) -> int | None:
    """Where ``text`` first names ``title`` (any of its forms, on word boundaries, any case)."""
    found = [m.start() for form in title_forms(title)
             if (m := re.search(rf"(?<!\w){re.escape(form)}(?!\w)", text, re.IGNORECASE))]
    return min(found) if found else None


def names(text: str, title: str) -> bool:
    """Whether ``text`` names ``title`` (any of its forms, on word boundaries, any case)."""
    return mention(text, title) is not None


def without_titles(text: str, titles: list[str]) -> str:
    """``text`` with every form of ``titles`` blanked out: a picked title may contain a shorter
    candidate title, which is then no mention of that candidate."""
    for title in titles:
        for form in title_forms(title):
            text = re.sub(re.escape(form), " ", text, flags=re.IGNORECASE)
    return text


_WORDS = re.compile(r"\w+", re.UNICODE)
_ARTICLES = {"the", "a", "an"}
_QUOTES = "'\"‘’“”*_«「《"


class CatalogTitles:
    """Which catalog titles a text names, read as a person would read them.

    A title is named when its words appear in the text with its capitals ("French Twist", not
    "a french twist"). A title of one word besides an article ("Heat", "The Game", "Michael")
    is also an everyday word or name, so it counts only in quotes or italics ("'Heat'"). The
    lookup costs one dictionary probe per word run, not one pattern per catalog title."""

    def __init__(self, titles: dict[str, str]) -> None:
        self._by_words: dict[tuple[str, ...], list[tuple[str, bool]]] = {}
        for item_id, title in titles.items():
            for form in title_forms(title):
                words = tuple(_WORDS.findall(form))
                if words:
                    plain_name = len([w for w in words if w.casefold() not in _ARTICLES]) >= 2
                    self._by_words.setdefault(words, []).append((item_id, plain_name))
        self._longest = max((len(w) for w in self._by_words), default=0)
        self.titles = dict(titles)

    def named_in(self, text: str) -> set[str]:
        """Ids of the catalog items whose titles ``text`` names."""
        spans = [(m.group(0), m.start()) for m in _WORDS.finditer(text)]
        found: set[str] = set()
        for start in range(len(spans)):
            for length in range(1, min(self._longest, len(spans) - start) + 1):
                words = tuple(w for w, _ in spans[start:start + length])
                for item_id, plain_name in self._by_words.get(words, ()):
                    at = spans[start][1]
                    # quoted: a quote mark that is no apostrophe inside a word ("O'Brien")
                    quoted = at > 0 and text[at - 1] in _QUOTES and (at < 2 or not text[at - 2].isalnum())
                    if plain_name or quoted:
                        found.add(item_id)
        return found


def catalog_titles(store) -> CatalogTitles:
    """The :class:`CatalogTitles` of ``store``'s items (anything with ``count_items()`` and
    ``item_titles()``), built once per store and rebuilt when its number of items changes."""
    count = store.count_items()
    cached = _CATALOGS.get(store)
    if cached is None or cached[0] != count:
        cached = _CATALOGS[store] = (count, CatalogTitles(store.item_titles()))
    return cached[1]


_CATALOGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
