"""Genre words people use (English and Chinese) and the catalog genres they name; one
vocabulary for reading constraints from a request and for checking a reason's genre claims."""

from __future__ import annotations

import re

# A word in a request or a reason → the catalog genre it names (lower case).
GENRE_WORDS: dict[str, str] = {
    "comedy": "comedy", "comedies": "comedy", "funny": "comedy", "laugh": "comedy",
    "drama": "drama", "dramas": "drama", "horror": "horror", "scary": "horror",
    "thriller": "thriller", "thrillers": "thriller", "sci-fi": "sci-fi", "scifi": "sci-fi",
    "science fiction": "sci-fi", "science-fiction": "sci-fi", "animated": "animation", "animation": "animation",
    "cartoon": "animation", "cartoons": "animation", "documentary": "documentary", "documentaries": "documentary",
    "romance": "romance", "romantic": "romance", "love story": "romance", "western": "western",
    "westerns": "western", "musical": "musical", "musicals": "musical", "war": "war", "crime": "crime",
    "mystery": "mystery", "fantasy": "fantasy", "adventure": "adventure", "action": "action",
    "family": "family", "kids": "children's", "children": "children's", "children's": "children's",
    "film-noir": "film-noir", "noir": "film-noir",
    "喜剧": "comedy", "剧情": "drama", "恐怖": "horror", "惊悚": "thriller", "科幻": "sci-fi", "动画": "animation",
    "纪录": "documentary", "爱情": "romance", "西部": "western", "歌舞": "musical", "战争": "war", "犯罪": "crime",
    "悬疑": "mystery", "奇幻": "fantasy", "冒险": "adventure", "动作": "action", "家庭": "family", "儿童": "children's",
}
# Catalogs name the family genre differently (MovieLens: Children's; the demo: Family).
SAME_GENRE = {"family": {"family", "children's"}, "children's": {"children's", "family"}}
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+")


def of_item(metadata: dict) -> list[str]:
    """An item's genres as stored in its metadata (a list, or one value), as strings."""
    value = metadata.get("genres") or []
    return [str(g) for g in value] if isinstance(value, list) else [str(value)]


def pattern(word: str) -> str:
    """A genre word as a regex: on word boundaries, except in CJK text, which has none."""
    return re.escape(word) if CJK.match(word) else rf"(?<![\w-]){re.escape(word)}(?![\w-])"


def mentions(text: str) -> list[tuple[int, str]]:
    """(position, catalog genre) of every genre word in ``text``."""
    lowered = text.casefold()
    return [(m.start(), genre) for word, genre in GENRE_WORDS.items() for m in re.finditer(pattern(word), lowered)]


def named(text: str) -> set[str]:
    """The catalog genres ``text`` names, with their aliases (family ↔ children's)."""
    return expand({genre for _, genre in mentions(text)})


def expand(genres: set[str]) -> set[str]:
    """``genres`` (lower case) with their aliases."""
    return genres | {alias for g in genres for alias in SAME_GENRE.get(g, ())}


def without(text: str) -> str:
    """``text`` with its genre words blanked out."""
    for word in GENRE_WORDS:
        text = re.sub(pattern(word), " ", text, flags=re.IGNORECASE)
    return text
