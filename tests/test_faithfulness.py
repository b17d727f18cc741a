"""A reason must say only what its evidence supports (agent/faithfulness.py)."""

from __future__ import annotations

import pytest

from prism.agent.evidence import Ledger, Pick
from prism.agent.faithfulness import extractive_pick, extractive_reason
from prism.faithfulness import check_reason

FARGO_PLOT = ("Jerry works in his in-laws' car dealership and has gotten himself in financial problems. "
              "He tries various schemes to come up with money, including hiring two men to kidnap his wife.")
FARGO = "Fargo (1996) Crime Drama Thriller Joel Coen Frances McDormand 1996"
INDY = "Raiders of the Lost Ark (1981) Action Adventure Steven Spielberg Harrison Ford 1981"
INDY_PLOT = "Archaeologist Indiana Jones races the Nazis to find the Ark of the Covenant."
ORBIT = "A lone astronaut repairs a silent space station and finds an unexpected calm among the stars."


@pytest.mark.parametrize("reason, cited, facts, request_text", [
    ("Fargo is a classic crime thriller that fits your taste of horror.", [FARGO_PLOT], FARGO, "I love horror"),
    ("It's a comedy.", [INDY_PLOT], INDY, "something fun"),
    ("Its plot mentions a Nazi death camp commander.", [FARGO_PLOT], FARGO, "a dark film"),
    ("Directed by Steven Spielberg in 1996.", [FARGO_PLOT], FARGO, "a crime film"),
    ("A heist on the moon with robots and lasers.", [ORBIT], "Quiet Orbit Sci-Fi Drama 2019", "space"),
    ("一部关于猫的喜剧", ["一位宇航员在遥远的星球上迷路了。"], "迷失星空 Sci-Fi 2020", "太空电影"),
    # The request does not make its words true of the film.
    ("Exotica (1994) is a drama with a big heist.", ["A tax auditor visits a strip club every night."],
     "Exotica (1994) Drama Atom Egoyan 1994", "films like Heat, with a big heist"),
    ("A classic crime movie from the eighties.", [FARGO_PLOT], FARGO, "a crime film"),
])
def test_unsupported_claims_are_caught(reason, cited, facts, request_text):
    verdict = check_reason(reason, cited, facts, request_text)
    assert not verdict.supported and verdict.unsupported


@pytest.mark.parametrize("reason, cited, facts, request_text", [
    ("A crime thriller about a man who has his wife kidnapped.", [FARGO_PLOT], FARGO, "a crime film"),
    ("Indiana Jones races the Nazis to find the Ark.", [INDY_PLOT], INDY, "an adventure"),
    ("A lone astronaut finds calm among the stars.", [ORBIT], "Quiet Orbit Sci-Fi Drama 2019", "a calm film"),
    ("A calm story in orbit, as you asked.", [ORBIT], "Quiet Orbit Sci-Fi Drama 2019", "a calm film"),
    ("It fits your wish for something from 1996.", [FARGO_PLOT], FARGO, "a film from 1996"),
    ("The plot mentions a barista in a café, as you asked.", ["A barista in a small café falls for a regular."],
     "Morning Roast Romance Comedy 2018", "a romantic comedy set in a café"),
    ("一部关于宇航员在太空迷路的科幻电影", ["一位宇航员在遥远的太空中迷路了。"], "迷失星空 Sci-Fi 2020", "太空"),
    ("A classic crime movie from the nineties that fits the request.", [FARGO_PLOT], FARGO, "crime from the 90s"),
    ("The plot is charming and the characters are cute.", [ORBIT], "Quiet Orbit Sci-Fi Drama 2019", "calm"),
])
def test_supported_reasons_pass(reason, cited, facts, request_text):
    verdict = check_reason(reason, cited, facts, request_text)
    assert verdict.supported, verdict.unsupported


def test_the_extractive_reason_quotes_the_sentence_that_matches_the_request():
    ledger = Ledger()
    ledger.add_candidate("24", "Fargo (1996)")
    ref = ledger.add_evidence("plot", FARGO_PLOT, "24", "document")
    reason = extractive_reason(Pick(item_id="24", reason="x", evidence=[ref.id]), ledger, "a film about a kidnap", 140)
    assert reason == "He tries various schemes to come up with money, including hiring two men to kidnap his wife."
    liked = ledger.add_evidence("history", "Pulp Fiction (1994)", "56", "title")
    assert extractive_reason(Pick(item_id="24", reason="x", evidence=[liked.id]), ledger, "", 140) == \
        'Because you liked "Pulp Fiction (1994)".'


def test_a_pick_citing_only_a_genre_line_gets_a_reason_from_its_own_plot():
    ledger = Ledger()
    ledger.add_candidate("24", "Fargo (1996)")
    genres_line = ledger.add_evidence("metadata", "Genres: Crime, Drama, Thriller.", "24", "document")
    plot = ledger.add_evidence("plot", FARGO_PLOT, "24", "document")
    ledger.add_evidence("plot", "A cowboy doll is jealous of a spaceman.", "1", "document")
    pick = extractive_pick(Pick(item_id="24", reason="x", evidence=[genres_line.id]), ledger, "a kidnap", 140)
    assert pick.evidence == [genres_line.id, plot.id]
    assert pick.reason == "He tries various schemes to come up with money, including hiring two men to kidnap his wife."
    ledger.add_candidate("9", "Lover's Knot (1996)")  # no plot in the catalog: the reason says what the details say
    only_details = ledger.add_evidence("metadata", "Genres: Comedy.", "9", "document")
    assert extractive_pick(Pick(item_id="9", reason="x", evidence=[only_details.id]), ledger, "a comedy", 140).reason \
        == "Genres: Comedy."
    cites_nothing = extractive_pick(Pick(item_id="9", reason="x", evidence=[]), ledger, "a comedy", 140)
    assert cites_nothing.evidence == [only_details.id] and cites_nothing.reason == "Genres: Comedy."


@pytest.mark.parametrize("reason, supported", [
    ("Gilligan's Island is a comedy film, but it is not a comedy film.", False),  # denies a genre it has
    ("The African Queen is an adventure from 1936.", False),  # the request's year, not the film's
    ("An adventure from 1951.", True),
    ("It's an adventure that fits your taste and recent history.", False),  # no history cited
    ("The image matches the description provided in the query.", True),  # about the request, no claim
    ("The African Queen (1951) (E14)", True),  # a citation marker is no name
])
def test_calibrated_rules(reason, supported):
    facts = "African Queen, The (1951) Action Adventure Romance War John Huston 1951"
    if "Gilligan" in reason:
        facts = "Gilligan's Island: The Movie (1998) Comedy 1998"
    verdict = check_reason(reason, ["Two travellers go down a river in 1914."], facts, "an adventure set in 1936")
    assert verdict.supported is supported, verdict.unsupported


def test_a_claim_about_the_users_history_needs_history_evidence():
    reason = "You liked Star Wars, and this is an adventure."
    facts = "Empire Strikes Back, The (1980) Action Adventure 1980"
    assert not check_reason(reason, ["Star Wars (1977)"], facts, "something exciting").supported
    assert check_reason(reason, ["Star Wars (1977)"], facts, "something exciting", history_cited=True).supported
