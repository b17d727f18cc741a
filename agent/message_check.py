"""Checks on what the LLM writes besides its picks: the message, and picks that data steered.

The message is free text, so it is checked before anyone reads it:

* ``instruction_in_message``: it holds instruction-like text (:mod:`prism.untrusted`), e.g. a
  sentence copied from an injected item description;
* ``copied_from_data``: it repeats a run of :data:`COPY_WORDS` or more words of a candidate's
  stored text (the message talks to the user; quotes belong in the evidence);
* ``names_non_pick``: it names a candidate that is not among the picks, or any other catalog
  film (:class:`prism.titles.CatalogTitles`) that neither the user nor this turn's evidence named;
* ``unsupported_claim``: a sentence that names a pick calls it a genre its record and texts do
  not name ("The Deep Field is a calm sci-fi film" of a documentary), denies one they do, or
  gives it a year they do not hold ("released in 1936" of a 1996 film, the year of the user's
  plot). A clause naming several picks ("A, B and C are all thrillers") claims it of each. Only
  clauses naming a pick, or starting with a pronoun after one ("It was released
  in 1936."), are judged: "Here are calm films" restates the request.

A pick is *steered* when its item's data held instruction-like text and the tools ranked it
below the first ``max_picks`` of their result: nothing but the instruction would explain the
choice, so it is dropped. The orchestrator re-asks once on message problems, then replaces the
message with :func:`plain_message`, written by code.
"""

from __future__ import annotations

import re

from prism.agent.evidence import Answer, Ledger, Violation
from prism.faithfulness import genre_claims, item_facts
from prism.store import Store
from prism.titles import bare_title, catalog_titles, display_title, mention, names, without_titles
from prism.untrusted import instruction_spans

COPY_WORDS = 8
_WORD = re.compile(r"\w+", re.UNICODE)
REFERS_BACK = re.compile(r"\s*(?:it|its|it's|this|that|these|those|they|the (?:film|movie|story|plot))\b", re.I)
YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
TOOL_FORMAT = re.compile(r"\(rank \d+, score|\bitem \d+:|<data\b", re.IGNORECASE)
COLLECTIVE = re.compile(r"\b(?:all|both|each)\b", re.IGNORECASE)
TASTE_CLAIM = re.compile(r"\b(?:your (?:own )?(?:tastes?|history|ratings?|preferences?|favou?rites?|past|viewing)"
                         r"|you(?:'ve| have)? (?:liked|loved|enjoyed|rated|watched|seen))\b", re.I)
STATED_TASTE = re.compile(r"\b(?:(?:I|we) (?:really |usually |often |also |do )*(?:like|love|enjoy|liked|loved|enjoyed|"
                          r"adore|prefer)|I'm (?:a fan|into)|(?:my|our) favou?rite)", re.I)
# "Whiskers is a comedy, while Morning Roast is a romance": each clause speaks of its own film.
# ", and 星际迷途 is a Sci-Fi film" starts a clause with its own verb; "A, B, and C are all
# thrillers" stays one clause.
CLAUSE_END = re.compile(r",?\s+(?:while|whereas|but)\s+|;\s+|,\s+and\s+(?=[^,]*\b(?:is|was)\b)")
SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])|\n+")


def _word_runs(text: str, n: int) -> set[tuple[str, ...]]:
    words = [w.casefold() for w in _WORD.findall(text)]
    return {tuple(words[i: i + n]) for i in range(len(words) - n + 1)}


def message_violations(answer: Answer, ledger: Ledger, store: Store,
                       also_named: dict[str, str] | None = None, said: str = "",
                       knows_taste: bool = False) -> list[Violation]:
    """Every problem of ``answer.message`` (empty: it may be shown). ``also_named``: titles
    (by item id) the message may not name unless picked besides this turn's candidates, e.g.
    the previous answer's picks after "not that one". ``said``: what the user said in this
    session (titles in it may be named). ``knows_taste``: the session remembers what they like."""
    message = answer.message
    violations = []
    if spans := instruction_spans(message):
        violations.append(Violation(kind="instruction_in_message", detail="the message repeats instruction-like "
                                    f"text from data ({spans[0].text!r}); write your own short message"))
    if TOOL_FORMAT.search(message):
        violations.append(Violation(kind="copied_from_data", detail="the message repeats how tools list items "
                                    "(rank, score, item ids); write your own short message"))
    runs = _word_runs(message, COPY_WORDS)
    if runs:
        records = store.get_items(list(ledger.candidates))
        for item_id, record in records.items():
            if runs & _word_runs(record.get("document") or "", COPY_WORDS):
                violations.append(Violation(kind="copied_from_data", item_id=item_id,
                                            detail=f"the message copies text of item {item_id}; write your own "
                                                   "short message"))
                break
    picked = {p.item_id for p in answer.picks}
    unpicked_text = without_titles(message, [ledger.candidates.get(i, "") for i in picked])
    for item_id, title in {**(also_named or {}), **ledger.candidates}.items():
        if item_id not in picked and names(unpicked_text, title):
            violations.append(Violation(kind="names_non_pick", item_id=item_id,
                                        detail=f"the message names {title}, which is not among the picks"))
    catalog = catalog_titles(store)
    # Titles the user or the evidence named may be named back, however the user typed them.
    allowed = " ".join([said, *(r.text for r in ledger.evidence.values())])
    flagged = {v.item_id for v in violations if v.kind == "names_non_pick"}
    # Catalog rules also catch a candidate named by its short form ("'French Twist' (Gazon maudit)").
    for item_id in sorted(catalog.named_in(unpicked_text) - picked - flagged - set(also_named or {})):
        if item_id not in ledger.candidates and names(allowed, catalog.titles[item_id]):
            continue
        violations.append(Violation(kind="names_non_pick", item_id=item_id,
                                    detail=f"the message names {catalog.titles[item_id]}, which is not among the "
                                           "picks; name only the picks"))
    history = any(r.kind == "history" for r in ledger.evidence.values())
    if (claim := taste_claim(message)) and not (history or knows_taste or STATED_TASTE.search(said.replace("’", "'"))):
        violations.append(Violation(kind="unsupported_claim", detail=f"the message says {claim!r}, but "
                                    "nothing in this conversation tells what the user likes; do not speak of "
                                    "their taste"))
    return violations + claim_violations(message, [p.item_id for p in answer.picks], ledger.candidates, store)


def taste_claim(message: str) -> str | None:
    """What ``message`` claims of the user's taste or history ("Based on your taste"), if
    anything; a question ("What are your favourite genres?") or a condition ("If you liked
    calm films") claims nothing."""
    for sentence in SENTENCE_END.split(message):
        if sentence.rstrip().endswith(("?", "？")):
            continue
        for match in TASTE_CLAIM.finditer(sentence):
            if not re.search(r"\bif\b", sentence[: match.start()], re.IGNORECASE):
                return match.group(0)
    return None


def claim_violations(message: str, picks: list[str], titles: dict[str, str], store: Store) -> list[Violation]:
    """``unsupported_claim`` problems of ``message`` about the ``picks`` (titles by item id).

    Within a clause, what follows a title up to the next one is said of that film ("Quiet
    Orbit (2019), a sci-fi drama, and The Deep Field (2016), a documentary"); what comes before
    the first title is read against them all ("For a calm sci-fi night, try A and B"); a clause
    saying "all", "both" or "each" says its last part of every film it names."""
    records = store.get_items(picks)
    facts = {i: f"{item_facts(records.get(i))} {(records.get(i) or {}).get('document', '')}" for i in picks}
    pick_titles = [titles.get(i, "") for i in picks]
    violations, about = [], []
    for clause in (c for s in SENTENCE_END.split(message) for c in CLAUSE_END.split(s)):
        at = sorted((position, i) for i in picks if titles.get(i) and (position := mention(clause, titles[i])) is not None)
        if at:
            about = [i for _, i in at]
            parts = [(clause[:at[0][0]], about)] + [
                (clause[start:(at[n + 1][0] if n + 1 < len(at) else len(clause))], [i]) for n, (start, i) in enumerate(at)]
            collective = bool(COLLECTIVE.search(clause))
            if collective:
                parts[-1] = (parts[-1][0], about)
        elif about and REFERS_BACK.match(clause):  # "It was released in 1936." is about the last one named
            parts, collective = [(clause, about[-1:])], False
        else:
            about = []
            continue
        for text, subjects in parts:
            # Genre words and years inside a title ("Romance in Manhattan (1996)") are its name, not a claim.
            claims = without_titles(text, pick_titles)
            # Said of each film alone, or of several at once (read against what they hold together).
            each = collective or len(subjects) == 1
            for item_id in subjects if each else subjects[:1]:
                held = facts[item_id] if each else " ".join(facts[i] for i in subjects)
                problems = genre_claims(claims, held) + [f"year '{y}'" for y in YEAR.findall(claims) if y not in held]
                if problems:
                    violations.append(Violation(
                        kind="unsupported_claim", item_id=item_id,
                        detail=f"the message says {problems[0]} of {bare_title(titles[item_id])}, which its record "
                               "does not hold; say only what the evidence shows"))
    return violations


def steered_picks(answer: Answer, ledger: Ledger, max_picks: int) -> list[Violation]:
    """Picks that only an instruction in data could explain (see the module docstring)."""
    return [Violation(kind="steered_pick", item_id=p.item_id,
                      detail=f"item {p.item_id} carried instruction-like text and ranked "
                             f"{ledger.ranks.get(p.item_id, -1) + 1} in its tool's result")
            for p in answer.picks
            if p.item_id in ledger.flagged and ledger.ranks.get(p.item_id, max_picks) >= max_picks]


def plain_message(answer: Answer, request: str, titles: dict[str, str] | None = None) -> str:
    """A message written by code, used when the model's message cannot be shown: the picks by
    title (``titles`` by item id), nothing else."""
    if not answer.picks:
        return "I found nothing I can recommend for that yet. Could you tell me more about what you like?"
    named = [display_title((titles or {}).get(p.item_id, "")) for p in answer.picks]
    named = [n for n in named if n]
    if len(named) != len(answer.picks):
        return f"Here {'is one pick' if len(answer.picks) == 1 else f'are {len(answer.picks)} picks'} for you."
    listed = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
    return f"You might like {listed}."
