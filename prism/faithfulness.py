"""Is a reason true? Its claims must be supported by what it cites.

The agent's validator proves that a cited evidence id exists and belongs to the item; this
module checks the sentence itself (:func:`check_reason`), for the agent
(:mod:`prism.agent.faithfulness`) and for calibrating the check on labelled pairs
(``evals/faithfulness_pairs.py``). A reason's *claims* are:

* genres ("a comedy", "sci-fi"): the item's genres or its cited text must say so, whatever
  the user asked for ("Fargo fits your taste for horror" is not supported by Fargo);
* numbers (years, ratings, counts) and names (capitalised words inside a sentence): they
  must appear in the cited evidence, the item's title and metadata, or the user's request;
* content words (the rest, less stop words, evaluative words and a few words any reason may
  use): at least :data:`CONTENT_SUPPORT` of them must appear (by a five-letter stem) in the
  evidence or the item's facts. The request does not support them: "Exotica is a drama with a
  big heist" for "films with a big heist" claims a heist the evidence does not show. A clause
  that only restates the request ("as you asked for …", "fits your wish for …") is no claim.

Calibrated on reason/evidence pairs from real turns, labelled by reading
(``evals/faithfulness_labels.jsonl``, ``evals/faithfulness_labels.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from prism import genres
from prism.untrusted import sentences

CONTENT_SUPPORT = 0.5
STEM = 5
# Words any reason may use without evidence: about fit, tone of the recommendation, the medium.
GENERIC = set("""image description provided query criteria summary details film films movie movies story stories fits fit match matches matching request wish asked looking
like liked likes love loved enjoy enjoyed want wanted perfect great good nice classic pick choice option because
since about with that this these those their there here where which what when while from into your you mood
evening night tonight watch watching recommend recommended also more most very well much many some something
plot poster tale features feature offers offer shows show similar same kind type style tone feel feels theme
themes based book about item best better look looks looking alike lovers fans anyone everyone viewers
ideal fine fun enjoyable popular favourite favorite favourites well-liked acclaimed beloved loved memorable
worth seeing treat experience pleasant touching light mentions mention mentioned describes described
describe depicts depicted tells told follows centers centres involves involving says said set charming cute
sweet heartwarming beautiful engaging entertaining exciting thrilling lovely delightful moving powerful
compelling interesting amazing wonderful excellent character characters""".split())
DECADE_WORDS = {"twenties": 20, "thirties": 30, "forties": 40, "fifties": 50, "sixties": 60, "seventies": 70,
                "eighties": 80, "nineties": 90}
DECADE = re.compile(r"\b(?:19)?([2-9]0)'?s\b|\b(" + "|".join(DECADE_WORDS) + r")\b", re.IGNORECASE)
# A clause that only restates what the user asked for: not a claim about the film.
RESTATES = re.compile(r"\b(?:fits?|match(?:es)?|suits?|meets?|for|as|like)\s+(?:your|the user's|the)\s+"
                      r"(?:request|wish|ask|mood|taste|query|search)\b[^.;]*|\b(?:you|the user)\s+(?:asked|wanted|"
                      r"are looking|were looking|requested)(?:\s+for)?\b[^.;]*|\bas (?:you )?(?:asked|requested)\b[^.;]*",
                      re.IGNORECASE)
EVIDENCE_ID = re.compile(r"\(?\bE\d+\b\)?")
# What a reason may say about the user only with evidence of their history.
ABOUT_THE_USER = re.compile(r"\byour (?:own )?(?:taste|tastes|history|preferences?|favou?rites?|ratings?|past)\b|"
                            r"\byou(?:'ve| have)? (?:liked|loved|enjoyed|rated|watched)\b", re.IGNORECASE)
STOP = set("""the and for are but not all any can had her was one our out has him his how man new now old see
two way who its let put say she too use a an of to in on at by is it as be or if so no do we he my me up""".split())
_WORD = re.compile(r"[^\W\d_][\w'\-]*|\d+(?:\.\d+)?")


@dataclass
class Verdict:
    supported: bool
    unsupported: list[str] = field(default_factory=list)




# Characters any Chinese reason may use without evidence (function words, "film", "story",
# "suits", "recommend", "like", …): the CJK counterpart of GENERIC.
CJK_GENERIC = set("的了是在和与也很非常这那一个部位关于电影片故事讲述适合推荐您你我们喜欢看一部这是它有讲个又还更都就")


def _words(text: str) -> list[str]:
    """Words of ``text``; CJK text (no spaces) counts character by character, less the
    characters in :data:`CJK_GENERIC`."""
    out = []
    for word in _WORD.findall(text):
        if genres.CJK.search(word):
            out += [c for run in genres.CJK.findall(word) for c in run if c not in CJK_GENERIC]
        else:
            out.append(word)
    return out


def _stem(word: str) -> str:
    return word.casefold().strip("'-")[:STEM]


def _names(text: str) -> list[str]:
    names = []
    for start, end in sentences(text):
        words = _words(text[start:end])
        names += [w for w in words[1:] if w[0].isupper() and w.casefold() not in GENERIC | STOP and w != "I"]
    return names


def item_facts(record: dict | None) -> str:
    """An item's title and metadata as one text (what its line showed the model)."""
    if not record:
        return ""
    meta = record.get("metadata", {})
    parts = [str(meta.get("title", ""))]
    for key in ("genres", "director", "cast", "year", "release_date"):
        value = meta.get(key)
        parts += [str(v) for v in value] if isinstance(value, list) else [str(value)] if value else []
    return " ".join(parts)


def check_reason(reason: str, cited: list[str], facts: str, request: str, history_cited: bool = False) -> Verdict:
    """Whether ``reason`` is supported by the ``cited`` evidence texts, the item's ``facts``
    (title, genres, people, year) and the user's ``request``; what is not. A claim about the
    user's own taste or history needs ``history_cited`` (evidence of their history)."""
    reason = EVIDENCE_ID.sub(" ", reason)  # "(E14)": a citation marker, not a claim
    about_item = " ".join([*cited, facts])
    sources = f"{about_item} {request}"
    source_stems = {_stem(w) for w in _words(sources)}
    item_stems = {_stem(w) for w in _words(about_item)}
    claim = RESTATES.sub(" ", reason)
    # A genre counts even inside a clause that restates the request: "fits your taste for horror"
    # still says the film is horror.
    unsupported = genre_claims(reason, about_item)
    if not history_cited and (about_user := ABOUT_THE_USER.search(reason)):
        unsupported.append(f"'{about_user.group(0)}' with no evidence of the user's history")
    years = {int(y) for y in re.findall(r"\b(1[89]\d\d|20\d\d)\b", about_item)}
    # A year said of the film must be the film's (or its evidence's), not only the request's.
    unsupported += [f"year '{y}'" for y in re.findall(r"\b(1[89]\d\d|20\d\d)\b", claim) if int(y) not in years]
    for match in DECADE.finditer(claim):  # "from the nineties": a year of the item must fall in it
        start = 1900 + (int(match.group(1)) if match.group(1) else DECADE_WORDS[match.group(2).casefold()])
        if not any(start <= y < start + 10 for y in years):
            unsupported.append(f"decade '{match.group(0)}'")
    claims_text = genres.without(DECADE.sub(" ", claim))  # genres and decades are judged above
    words = _words(claims_text)
    unsupported += [f"'{w}'" for w in words if w[0].isdigit() and w not in sources]
    unsupported += [f"name '{n}'" for n in _names(claims_text) if _stem(n) not in source_stems]
    content = [w for w in words if not w[0].isdigit() and (len(w) >= 3 or genres.CJK.match(w))
               and w.casefold() not in GENERIC | STOP and not w[0].isupper()]
    missing = [w for w in content if _stem(w) not in item_stems]
    if content and (len(content) - len(missing)) / len(content) < CONTENT_SUPPORT:
        unsupported.append("words not in the evidence: " + ", ".join(missing[:4]))
    return Verdict(not unsupported, unsupported)


def genre_claims(text: str, about_item: str) -> list[str]:
    """The genre claims of ``text`` that ``about_item`` (an item's facts and texts) does not
    support: a genre it does not name, or "not <genre>" for a genre it names."""
    denied = _denied_genres(text)
    claimed = {genre for _, genre in genres.mentions(text)} - denied  # "not a comedy" claims no comedy
    named = genres.named(about_item)
    return [f"genre '{g}'" for g in sorted(claimed - named)] + [f"'not {g}'" for g in sorted(denied & named)]


def _denied_genres(reason: str) -> set[str]:
    """Genres the reason says the film is not ("but it is not a comedy")."""
    folded = reason.casefold()
    return {genre for start, genre in genres.mentions(reason)
            if re.search(r"\b(?:not|isn't|is not|no|never)\s+(?:a\s+|an\s+)?$", folded[max(0, start - 12): start])}


def stems(text: str) -> set[str]:
    """The word stems of ``text`` (CJK: its characters), as the check compares them."""
    return {_stem(w) for w in _words(text)}
