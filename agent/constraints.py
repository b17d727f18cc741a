"""Constraints the user stated, read from their own words by code, and applied to what the
tools return.

The embedded model fills optional search filters it was never asked for, so filters do not
come from the model: they come from the request and the conversation. :func:`parse` reads
genres wanted ("a funny animated film" → comedy, animation), genres to avoid ("no sci-fi",
"nothing scary"), years ("before 1980", "from the 90s", "something older" than the last
answer's picks) and "not that one" (the last answer's picks are left out). A turn that only
refines the last one (:func:`is_refinement`) keeps the conversation's genres (:func:`carried`)
and is searched by the earlier turn's topic. :func:`rank`
keeps the tools' order among items that satisfy the hard constraints (years, avoided genres,
left-out items) and moves items that match more of the wanted genres up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from prism import genres
from prism.faithfulness import GENERIC, STOP

# (pattern with the year as group 1, year_min offset, year_max offset); None leaves that bound.
YEAR_PATTERNS: tuple[tuple[str, int | None, int | None], ...] = (
    (r"\b(?:before|older than|earlier than|pre-?)\s*(\d{4})\b", None, -1),
    (r"\b(?:until|up to|no later than)\s*(\d{4})\b", None, 0),
    (r"\b(?:after|newer than|later than)\s*(\d{4})\b", 1, None),
    (r"\b(?:since|from)\s*(\d{4})\b", 0, None),
    (r"\b(?:in|of)\s+(\d{4})\b", 0, 0),
)
# Words of a request that say nothing about the film wanted ("What should I watch tonight?").
SMALL_TALK = GENERIC | STOP | set("""bored ideas idea please should would could tonight today picture image photo
photos pictures one ones give find show tell anything need want wants what's i'm i'd i've you're let's just really
maybe get got either instead too also rather have""".split())
# Words of a turn that asks for nothing at all: thanks, greetings, goodbyes ("Thanks, great!").
CHIT_CHAT = set("""thanks thank thx you ok okay great cool bye goodbye hi hello hey nice awesome perfect cheers good
night morning evening wow lol sure got it that's that was those these much very so love lovely brilliant excellent fine
alright all right see ya later done for now the help helpful amazing i'll will watch them yes yeah""".split())
CJK_CHIT_CHAT = {"谢谢", "谢谢你", "多谢", "你好", "再见", "好的", "好", "太好了"}
NOT_THAT_ONE = r"\bnot (?:that|this|those|these)(?: one| ones)?\b|\bsomething else\b|\banother one\b|\bseen (?:it|that)\b"
NEGATION = r"(?:no|not|nothing|without|avoid|except|hate|don't want|do not want|not into|no more)"


@dataclass
class Constraints:
    genres: set[str] = field(default_factory=set)
    avoid: set[str] = field(default_factory=set)
    year_min: int | None = None
    year_max: int | None = None
    exclude: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.genres or self.avoid or self.year_min or self.year_max or self.exclude)

    def describe(self) -> str:
        parts = [f"wants {', '.join(sorted(self.genres))}"] if self.genres else []
        parts += [f"avoids {', '.join(sorted(self.avoid))}"] if self.avoid else []
        parts += [f"from {self.year_min}"] if self.year_min else []
        parts += [f"up to {self.year_max}"] if self.year_max else []
        parts += [f"not {', '.join(sorted(self.exclude))}"] if self.exclude else []
        return "; ".join(parts)


def parse(request: str, previous_picks: list[tuple[str, int | None]] = ()) -> Constraints:
    """The constraints stated in ``request``; ``previous_picks`` are (item id, year) of the last
    answer, for "something older/newer" and "not that one"."""
    text = request.casefold()
    found = Constraints()
    for start, genre in genres.mentions(request):
        before = text[max(0, start - 24): start]
        (found.avoid if re.search(rf"\b{NEGATION}\b[^.,;]*$", before) else found.genres).add(genre)
    found.genres -= found.avoid
    for pattern, low, high in YEAR_PATTERNS:
        for m in re.finditer(pattern, text):
            year = int(m.group(1))
            if low is not None:
                found.year_min = year + low
            if high is not None:
                found.year_max = year + high
    if m := re.search(r"\b(?:the\s+)?(?:19)?([2-9]0)'?s\b", text):
        found.year_min, found.year_max = 1900 + int(m.group(1)), 1909 + int(m.group(1))
    years = [y for _, y in previous_picks if y]
    if years and re.search(r"\bolder\b|\bearlier\b|\bless recent\b", text):
        found.year_max = min(years) - 1
    if years and re.search(r"\bnewer\b|\bmore recent\b|\blater\b", text):
        found.year_min = max(years) + 1
    if previous_picks and re.search(NOT_THAT_ONE, text):
        found.exclude = {item_id for item_id, _ in previous_picks}
    return found


REFINEMENT = (NOT_THAT_ONE + r"|\b(?:something |one |a bit |much )?(?:older|newer|earlier|later|more recent|less recent)\b|"
              r"\b(?:before|after|since|from|until|in|of)\s*\d{4}\b|\b(?:the\s+)?(?:19)?[2-9]0'?s\b")


def is_refinement(request: str) -> bool:
    """Whether ``request`` only adjusts the last one ("Not that one, something older.", "no
    horror", "from the 80s"): without its constraint words it says nothing about a film. Such
    a turn is about the earlier turn's topic."""
    if not request.strip() or genres.CJK.search(request):
        return False
    rest = genres.without(re.sub(REFINEMENT, " ", request.casefold()))
    return not says_what_it_wants(re.sub(rf"\b{NEGATION}\b", " ", rest))


def carried(stated: Constraints, earlier: Constraints) -> Constraints:
    """``stated`` (this turn's constraints) with the genres wanted and avoided earlier in the
    conversation, unless this turn states its own."""
    wanted = stated.genres or (earlier.genres - stated.avoid)
    return Constraints(genres=set(wanted), avoid=stated.avoid | (earlier.avoid - stated.genres),
                       year_min=stated.year_min, year_max=stated.year_max, exclude=set(stated.exclude))


def says_what_it_wants(request: str) -> bool:
    """Whether ``request`` says anything about the film wanted: a content word (or any CJK
    text) beyond small talk. "I'm bored. What would I like?" says nothing; searching its words
    only finds films that happen to share them."""
    if genres.CJK.search(request):
        return True
    return any(len(w) >= 3 and w not in SMALL_TALK for w in re.findall(r"[a-z][a-z'\-]*", request.casefold()))


def is_chit_chat(request: str) -> bool:
    """Whether ``request`` is only thanks, a greeting or a goodbye ("Thanks!", "ok, bye"): a
    turn that asks for no films, so no tool runs before the model answers it."""
    folded = request.casefold().strip()
    if genres.CJK.search(folded):
        return re.sub(r"[\s\W]+", "", folded) in CJK_CHIT_CHAT
    words = re.findall(r"[a-z][a-z']*", folded)
    return bool(words) and all(w in CHIT_CHAT for w in words)


def _item_genres(metadata: dict) -> set[str]:
    return genres.expand({g.casefold() for g in genres.of_item(metadata)})


def satisfies(item_id: str, metadata: dict, constraints: Constraints) -> bool:
    """Whether an item meets the hard constraints (years, avoided genres, left-out items)."""
    year = metadata.get("year")
    year = int(year) if isinstance(year, (int, float)) or (isinstance(year, str) and year.isdigit()) else None
    if item_id in constraints.exclude or _item_genres(metadata) & constraints.avoid:
        return False
    if year is not None and ((constraints.year_min and year < constraints.year_min)
                             or (constraints.year_max and year > constraints.year_max)):
        return False
    return not ((constraints.year_min or constraints.year_max) and year is None)


def rank(items: list, constraints: Constraints, item_id=lambda h: h.item_id, metadata=lambda h: h.metadata) -> list:
    """``items`` (any objects; ``item_id``/``metadata`` read them) that satisfy the hard
    constraints, those matching more wanted genres first, the tools' order kept otherwise."""
    kept = [h for h in items if satisfies(str(item_id(h)), metadata(h), constraints)]
    if not constraints.genres:
        return kept
    return sorted(kept, key=lambda h: -len(_item_genres(metadata(h)) & constraints.genres))
