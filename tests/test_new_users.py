"""A user Prism knows nothing about gets a useful first answer: well-liked films from different
genres and a question, never a dead end."""

from __future__ import annotations

import re

import numpy as np

from prism.agent.llm import ScriptedChat
from prism.agent.orchestrator import Agent
from prism.agent.sessions import SessionStore
from prism.service import PrismService
from prism.starter import PRIOR_RATINGS


def test_starter_picks_are_well_liked_and_varied(api_home):
    service = PrismService(api_home["settings"])
    picks = service.starter_picks(n=5, ratings=api_home["home"] / "ratings.tsv")
    assert len(picks) == 5 and len({p.item_id for p in picks}) == 5

    rows = np.loadtxt(api_home["home"] / "ratings.tsv", dtype=np.int64)
    prior = rows[:, 2].mean()
    damped = {}
    for item in np.unique(rows[:, 1]):
        mine = rows[rows[:, 1] == item, 2]
        damped[str(item)] = (mine.sum() + PRIOR_RATINGS * prior) / (len(mine) + PRIOR_RATINGS)
    assert picks[0].item_id == max(damped, key=damped.get)  # the best damped mean leads
    leads = [p.genres[0] for p in picks if p.genres]
    distinct = {service.get_item(i)["metadata"]["genres"][0] for i in damped if service.get_item(i)["metadata"].get("genres")}
    assert len(set(leads)) == min(5, len(distinct))  # as many genres as the catalog offers
    assert all(p.ratings > 0 and 1 <= p.mean_rating <= 5 for p in picks)


def test_a_new_user_gets_picks_and_a_question(api_home, tmp_path):
    # The model writes the question (the fast answer, on by default, has code pick the films).
    service = PrismService(api_home["settings"].model_copy(update={"agent_fast_answer": False}))

    def answer(call):
        opening = next(m["content"] for m in call["messages"] if m["role"] == "user" and "Request:" in m["content"])
        block = opening[opening.index('<data tool="recommend_for_user">'):]
        assert "is new (no ratings yet)" in block and "liked by many" in block
        items = re.findall(r"^item (\S+):", block, re.M)[:3]
        return {"answer": {"message": "Welcome! Do you prefer comedies or dramas? Meanwhile, a few favourites.",
                           "picks": [{"item_id": i, "reason": "A well-liked film.",
                                      "evidence": re.findall(r"\b(E\d+) ", block[block.index(f"item {i}:"):])[:1]}
                                     for i in items]}}

    result = Agent(service, ScriptedChat([answer]), SessionStore(tmp_path / "s.sqlite3")).run_turn(
        "new-1", "what should I watch tonight?", user_id="424242")
    assert len(result.answer.picks) == 3 and not result.trace.violations and not result.trace.fallback
    assert "?" in result.answer.message


def test_the_fast_answer_gives_a_new_user_starter_picks_and_asks_about_their_taste(api_home, tmp_path):
    service = PrismService(api_home["settings"].model_copy(update={"agent_fast_answer": True}))
    shown = []

    def message(call):
        shown.append(call["messages"][-1]["content"])
        first = re.search(r"^- (.+?) \(\d{4}\)", shown[-1], re.M).group(1)
        return {"message": f"You might like {first}."}  # no question: code adds one

    result = Agent(service, ScriptedChat([message]), SessionStore(tmp_path / "s.sqlite3")).run_turn(
        "new-fast", "what should I watch tonight?", user_id="424242")
    starters = [s.item_id for s in service.starter_picks(n=3)]
    assert result.trace.fast_answer and [p.item_id for p in result.answer.picks] == starters
    assert "The user is new here" in shown[0]  # the model was asked for the question
    assert result.answer.message.endswith("What kind of films do you enjoy?")
    assert result.answer.message.startswith("You might like")
