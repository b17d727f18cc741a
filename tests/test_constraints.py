"""Constraints the user states reach the tools' results, whatever the model does."""

from __future__ import annotations

import re

import pytest

from prism.agent import constraints
from prism.agent.constraints import parse


@pytest.mark.parametrize("request_text, described", [
    ("a funny animated film for a family evening", "wants animation, comedy, family"),
    ("no sci-fi, something calm", "avoids sci-fi"),
    ("nothing scary please", "avoids horror"),
    ("a thriller from the 90s", "wants thriller; from 1990; up to 1999"),
    ("something before 1980 but not horror", "avoids horror; up to 1979"),
    ("a drama released in 1995", "wants drama; from 1995; up to 1995"),
    ("a calm film about space", ""),
])
def test_constraints_are_read_from_the_request(request_text, described):
    assert parse(request_text).describe() == described


def test_older_and_not_that_one_refer_to_the_last_answer():
    found = parse("not that one, something older", [("12", 1995), ("40", 1990)])
    assert (found.year_max, found.exclude) == (1989, {"12", "40"})
    assert parse("something older").describe() == ""  # nothing to be older than yet


def test_stated_constraints_order_and_filter_what_the_model_sees(tmp_path, demo_catalog, model_cache):
    from prism.agent.llm import ScriptedChat
    from prism.agent.orchestrator import Agent
    from prism.agent.sessions import SessionStore
    from prism.service import PrismService
    from prism.settings import Settings

    # The script's one pick stays one pick (agent_fill_picks off): "older" then means older than it;
    # the model picks (the fast answer off) from what it was shown.
    service = PrismService(Settings(home=tmp_path / "home", model_cache_dir=model_cache, multilingual_model="none",
                                    agent_fill_picks=False, agent_fast_answer=False))
    assert service.ingest(demo_catalog).ingested == 10
    sessions = SessionStore(tmp_path / "s.sqlite3")

    def first_item(call):
        opening = next(m["content"] for m in call["messages"] if m["role"] == "user" and "Request:" in m["content"])
        block = opening[opening.index('<data tool="search_catalog">'):]
        item = re.findall(r"^item (\S+):", block, re.M)[0]
        evidence = re.findall(r"\b(E\d+) ", block[block.index(f"item {item}:"):])[:1]
        return {"answer": {"message": "Here.", "picks": [{"item_id": item, "reason": "It fits.",
                                                         "evidence": evidence}]}}, block

    seen = []

    def answer(call):
        reply, block = first_item(call)
        seen.append(block)
        return reply

    agent = Agent(service, ScriptedChat([answer] * 4), sessions)
    first = agent.run_turn("c1", "a funny animated film for a family evening")
    assert first.trace.constraints == "wants animation, comedy, family"
    shown = re.findall(r"^item (\S+):", seen[0], re.M)
    genres = {i: set(service.get_item(i)["metadata"]["genres"]) for i in shown}
    assert len(genres[shown[0]] & {"Animation", "Comedy", "Family"}) >= 2  # the best match leads

    second = agent.run_turn("c2", "a calm film about space, but no sci-fi")
    assert all("Sci-Fi" not in service.get_item(i)["metadata"]["genres"]
               for i in re.findall(r"^item (\S+):", seen[1], re.M))
    assert second.trace.constraints == "avoids sci-fi"

    picked = first.answer.picks[0].item_id
    year = service.get_item(picked)["metadata"]["year"]
    older = agent.run_turn("c1", "not that one, something older")
    # A turn that only refines the last one keeps its topic and its genres.
    assert older.trace.topic == "a funny animated film for a family evening"
    assert older.trace.constraints.startswith("wants animation, comedy, family; up to ")
    searched = [s.arguments for s in older.trace.steps if s.name == "search_catalog"]
    assert searched[0] == {"query": "a funny animated film for a family evening"}
    later = re.findall(r"^item (\S+):", seen[2], re.M)
    assert later and picked not in later and all(service.get_item(i)["metadata"]["year"] < year for i in later)

    # Nothing is that old: the years give way, what the user ruled out does not.
    again = agent.run_turn("c1", "not that one either, something from before 1900")
    closest = re.findall(r"^item (\S+):", seen[3], re.M)
    assert "no item meets the stated constraints" in seen[3] and closest
    assert again.answer.picks[0].item_id not in {picked} and later[0] not in closest


@pytest.mark.parametrize("request_text, refines", [
    ("Not that one, something older.", True), ("no horror please", True), ("from the 80s", True),
    ("not that one either, something from before 1900", True), ("anything newer?", True), ("a comedy instead", True),
    ("Not that one, something older with pirates", False), ("a calm film about space", False), ("", False),
    ("不要这个", False)])
def test_a_turn_that_only_refines_the_last_one_is_told_apart(request_text, refines):
    assert constraints.is_refinement(request_text) is refines


@pytest.mark.parametrize("request_text, says", [
    ("What should I watch tonight?", False), ("I'm bored. What would I like?", False),
    ("Find me films like this poster.", False), ("I'm new here. I usually enjoy action and drama films.", True),
    ("a calm film about space", True), ("推荐一部电影", True), ("something with a cat", True)])
def test_small_talk_is_told_apart_from_a_request_that_says_what_it_wants(request_text, says):
    assert constraints.says_what_it_wants(request_text) is says
