"""The orchestrator: one conversational turn = LLM steps that call tools, then a grounded answer.

A turn:

1. loads the session (linked user, stated preferences, the last few turns) from SQLite;
2. asks the LLM for a step (a tool call or the answer), runs the tool, shows the result as
   delimited data, and repeats, at most ``settings.agent_max_steps`` steps;
3. validates the answer against what the tools returned and the store
   (``agent.evidence.validate``): on violations it re-asks once, then drops what is still
   ungrounded; malformed steps are re-asked at most ``settings.agent_max_repairs`` times;
4. renders the fluent text (``agent.render``), saves the turn and its trace.

Nothing a model writes can crash a turn: an LLM that keeps failing, or runs out of steps,
ends with the candidates the tools found, each with its real evidence (``fallback`` in the
trace). Events (``step``, ``tool``, ``token``, ``answer``) stream to ``on_event``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from prism.agent import constraints, render
from prism.agent.evidence import USER_KINDS, Answer, Pick, Violation, drop_violations, validate
from prism.agent.faithfulness import extractive_pick, reason_violations
from prism.agent.llm import ChatModel, LLMError, LLMReply
from prism.agent.message_check import message_violations, plain_message, steered_picks
from prism.agent.sessions import SessionStore, Turn
from prism.agent.steps import (
    MESSAGE_CHARS,
    REASON_CHARS,
    AnswerStep,
    MessageStream,
    StepError,
    ToolStep,
    openai_tools,
    parse_step,
    step_schema,
    tool_signatures,
    tool_step,
)
from prism.agent.toolkit import TurnContext, as_data, build_tools, own_plot
from prism.errors import PrismError
from prism.prompts import load_prompt
from prism.service import PrismService
from prism.titles import display_title, names
from prism.untrusted import without_instructions

EventCallback = Callable[[dict], None]
FAST_MESSAGE_TOKENS = 60  # a short sentence or two, as JSON
FAST_MESSAGE_CHARS = 160  # room for one sentence naming three titles
NEW_USER_NOTE = "The user is new here: after the sentence, ask one short question about what films they like.\n"
NEW_USER_QUESTION = "What kind of films do you enjoy?"


def film_line(title: str, record: dict | None) -> str:
    """"Quiet Orbit (2019): Sci-Fi, Drama": what the fast message may say of a film."""
    meta = (record or {}).get("metadata", {})
    year = meta.get("year") or (found.group(1) if (found := re.search(r"\((\d{4})\)\s*$", title)) else None)
    genres = ", ".join(meta.get("genres") or [])
    # As prose names it ("The Truth About Cats & Dogs", not the catalog's "Truth About Cats & Dogs, The"):
    # the model copies the form it is shown.
    named = display_title(title) + (f" ({year})" if year else "")
    return without_instructions(named + (f": {genres}" if genres else ""))


def usable_tools(tools, ctx: TurnContext) -> list:
    """The tools that can work in this turn: user tools need a linked user, caption_image an
    attached image, transcribe_audio a voice message. The system prompt lists all of them
    (it stays the same, so its KV cache is reused); the step's schema offers only these."""
    needs = {"recommend_for_user": ctx.user_id, "get_user_history": ctx.user_id,
             "caption_image": ctx.image, "search_by_image": ctx.image, "transcribe_audio": ctx.audio}
    return [t for t in tools if needs.get(t.name, True)]


class StepTrace(BaseModel):
    kind: str  # "llm" or "tool"
    name: str
    seconds: float
    arguments: dict | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    prompt_seconds: float | None = None  # llama.cpp timings: prompt processing
    generation_seconds: float | None = None  # and generation
    output: str | None = None
    error: str | None = None
    prefetched: bool = Field(False, description="Run by code before the first LLM step (an obvious call).")


class Trace(BaseModel):
    """What a turn did and what it cost."""

    backend: str
    steps: list[StepTrace] = Field(default_factory=list)
    latency_seconds: float = 0.0
    first_token_seconds: float | None = Field(None, description="Turn start to the first answer text shown (the "
                                              "model's message is held back until it is checked).")
    first_event_seconds: float | None = Field(None, description="Turn start to the first event streamed (a tool "
                                              "starting, a card, a token).")
    first_card_seconds: float | None = Field(None, description="Turn start to the first card (a pick with its "
                                             "evidence) streamed; without cards, to the answer.")
    llm_seconds: float = 0.0
    tool_seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    tool_calls: int = 0
    invalid_steps: int = Field(0, description="Malformed steps (bad JSON, unknown tool, bad arguments).")
    repeated_calls: int = Field(0, description="Tool calls the model asked for again with the same arguments: not "
                                "run again, the next step had to answer.")
    violations: list[Violation] = Field(default_factory=list)
    dropped_picks: int = 0
    reasked_for_grounding: bool = False
    fallback: bool = False
    reasons: int = Field(0, description="Reasons in the final answer.")
    supported_reasons: int = Field(0, description="Of those, the ones the model wrote that their evidence supports "
                                   "(the rest were replaced by extractive reasons).")
    message_replaced: bool = Field(False, description="The model's message could not be shown (instruction-like, "
                                   "copied from data, or naming a non-pick) and code wrote it.")
    below_top: list[str] = Field(default_factory=list, description="Picks below the tools' top ranks, each replaced by "
                                 "the best-ranked candidate (stated constraints already order the candidates).")
    filled: list[str] = Field(default_factory=list, description="Best-ranked candidates code added to an answer "
                              "that picked fewer than agent_max_picks (with extractive reasons).")
    candidates: list[str] = Field(default_factory=list, description="Every item the tools showed the model.")
    topic: str = Field("", description="What the turn searched as the user's words: the request, the words of "
                       "their voice message, or for a turn that only refines the last one (\"not that one, something "
                       "older\") the earlier turn's topic.")
    constraints: str = Field("", description="The constraints read from the user's words and applied to the "
                             "tools' results (prism.agent.constraints).")
    fast_answer: bool = Field(False, description="Code picked the prefetched tools' best-ranked candidates and the "
                              "LLM wrote only the message (settings.agent_fast_answer).")
    withheld_instructions: dict[str, list[str]] = Field(
        default_factory=dict, description="Per item, instruction-like spans withheld from the model.")


class TurnResult(BaseModel):
    session_id: str
    turn: int
    request: str
    answer: Answer
    text: str
    titles: dict[str, str] = Field(default_factory=dict, description="The picked items' titles by id.")
    evidence: dict[str, dict] = Field(description="The cited evidence by id: kind, item_id, text.")
    trace: Trace


class Agent:
    """Prism's conversational agent over one service, one chat model and one session store."""

    def __init__(self, service: PrismService, llm: ChatModel, sessions: SessionStore | None = None) -> None:
        self.service, self.llm = service, llm
        self.settings = service.settings
        self.sessions = sessions or SessionStore(self.settings.sessions_path)

    def run_turn(self, session_id: str, request: str, image: Path | None = None, audio: Path | None = None,
                 user_id: str | None = None, on_event: EventCallback | None = None) -> TurnResult:
        """Answer one request in session ``session_id`` (created if new; ``user_id`` links a user)."""
        started = time.perf_counter()
        emit = on_event or (lambda event: None)
        request = request.strip()
        if not request and image is None and audio is None:
            raise PrismError("a request needs text, an image or a voice message")
        self.sessions.ensure(session_id, user_id)
        session = self.sessions.load(session_id)
        assert session is not None
        stated = constraints.parse(request, self._last_picks(session))
        topic = request
        if session.turns and constraints.is_refinement(request):
            # "Not that one, something older.": the same topic, with this turn's constraints added.
            last = session.turns[-1]
            topic = (last.trace or {}).get("topic") or last.request or request
            stated = constraints.carried(stated, constraints.parse(topic))
            if stated.exclude:  # "not that one (either)": nothing already shown on this topic
                stated.exclude |= {p["item_id"] for t in session.turns if t.answer
                                   and ((t.trace or {}).get("topic") or t.request) == topic
                                   for p in t.answer.get("picks", [])}
        ctx = TurnContext(self.service, self.sessions, session_id, session.user_id, image=image, audio=audio,
                          preferences=list(session.preferences), k=self.settings.agent_candidates,
                          constraints=stated)
        tools = build_tools(ctx, filters=self.llm.native_tools)
        trace = Trace(backend=self.llm.name, constraints=ctx.constraints.describe(), topic=topic)
        sink = emit

        def emit(event: dict) -> None:
            seconds = round(time.perf_counter() - started, 3)
            if trace.first_event_seconds is None:
                trace.first_event_seconds = seconds
            if event["type"] in ("card", "answer") and trace.first_card_seconds is None:  # no cards: the answer's
                trace.first_card_seconds = seconds
            sink(event)
        # Thanks or a greeting asks for no films: the model answers it without tool results.
        prefetched = (self._prefetch(topic, ctx, tools, trace, emit) if self.settings.agent_prefetch
                      and (image or audio or not constraints.is_chit_chat(request)) else "")
        messages = self._opening(session, request, ctx, tools, prefetched)
        repairs_left = self.settings.agent_max_repairs
        stream = None

        def on_token(chunk: str) -> None:
            stream.feed(chunk)

        held: list[str] = []

        def on_text(text: str) -> None:
            # The model's message is held back: nobody reads it before it is checked (below).
            held.append(text)

        def show(text: str) -> None:
            trace.first_token_seconds = time.perf_counter() - started
            emit({"type": "token", "text": text})

        usable = usable_tools(tools, ctx)
        earlier = self._earlier_titles(session)
        answer: Answer | None = None
        if self.settings.agent_fast_answer and prefetched:
            answer = self._tools_answer(ctx, trace.topic or topic, trace, emit)  # a voice turn: the words heard
        said = " ".join([*(t.request for t in session.turns), request, trace.topic])  # topic: the words heard
        answer_now = False
        for step in range(0 if answer is not None else self.settings.agent_max_steps):
            allow_tools = step < self.settings.agent_max_steps - 1 and not answer_now
            stream = MessageStream(on_text)
            try:
                reply = self._complete(messages, usable, ctx, allow_tools, on_token, trace)
            except LLMError as error:
                trace.steps.append(StepTrace(kind="llm", name="error", seconds=0.0, error=str(error)))
                break
            try:
                parsed = self._parse(reply, tools)
            except StepError as error:
                trace.invalid_steps += 1
                emit({"type": "step", "status": "invalid", "error": str(error)})
                if repairs_left == 0:
                    break
                repairs_left -= 1
                messages += [{"role": "assistant", "content": reply.content or "(tool call)"},
                             {"role": "user", "content": load_prompt("agent_repair").format(problems=str(error))}]
                continue
            if isinstance(parsed, ToolStep):
                if self._ran_before(parsed, trace):
                    # Small models repeat a call they already have the result of, step after step;
                    # the result would be the same, so the next step must answer.
                    trace.repeated_calls += 1
                    answer_now = True
                    messages += [{"role": "assistant", "content": reply.content or "(tool call)"},
                                 {"role": "user", "content": load_prompt("agent_answer_now").format(tool=parsed.tool)}]
                    continue
                messages += self._run_tool(parsed, reply, tools, ctx, trace, emit)
                # After the prefetched calls one more call of the model's own choosing is enough
                # (a rewritten query, an item's details); then it answers.
                answer_now = bool(prefetched)
                continue
            violations = (validate(parsed.answer, ctx.ledger, self.service.store)
                          + steered_picks(parsed.answer, ctx.ledger, self.settings.agent_max_picks))
            rejected = {v.item_id for v in violations if v.item_id}
            violations += (message_violations(parsed.answer, ctx.ledger, self.service.store, earlier, said,
                                              bool(ctx.preferences))
                           + reason_violations(parsed.answer, ctx.ledger, self.service.store, request, rejected))
            trace.violations += violations
            if violations and not trace.reasked_for_grounding and step < self.settings.agent_max_steps - 1:
                trace.reasked_for_grounding = True
                problems = "; ".join(v.detail for v in violations)
                emit({"type": "step", "status": "ungrounded", "error": problems})
                messages += [{"role": "assistant", "content": reply.content},
                             {"role": "user", "content": load_prompt("agent_repair").format(problems=problems)}]
                continue
            answer = drop_violations(parsed.answer, violations)
            trace.dropped_picks += len(parsed.answer.picks) - len(answer.picks)
            break
        if answer is None:
            answer = self._fallback(ctx)
            trace.fallback = True
        answer = self._keep_tool_order(answer, ctx, request, trace)
        answer = self._fill(answer, ctx, request, trace)
        answer = self._faithful(answer, ctx, trace.topic or request, trace)  # a voice turn: the words heard
        if trace.fast_answer:
            message = self._fast_message(request or trace.topic, answer, ctx, trace)  # a voice turn: the words heard
            trace.message_replaced = not message
            answer = answer.model_copy(update={"message": message or plain_message(answer, request,
                                                                                    ctx.ledger.candidates)})
        if message_violations(answer, ctx.ledger, self.service.store, earlier, said, bool(ctx.preferences)):
            # Still not showable after the re-ask (or the picks it named were dropped): code writes it.
            answer = answer.model_copy(update={"message": plain_message(answer, request, ctx.ledger.candidates)})
            trace.message_replaced = True
        if ctx.new_user and answer.picks and "?" not in answer.message:
            # A new user's first answer asks about their taste (the model was asked to; code makes sure).
            answer = answer.model_copy(update={"message": f"{answer.message.strip()} {NEW_USER_QUESTION}"})
        trace.withheld_instructions = {k: v[:3] for k, v in ctx.ledger.flagged.items()}
        trace.candidates = list(ctx.ledger.candidates)
        cap = (FAST_MESSAGE_CHARS if trace.fast_answer else MESSAGE_CHARS) + len(NEW_USER_QUESTION) * ctx.new_user
        answer = Answer(message=render.whole_sentences(answer.message, cap), picks=[
            p.model_copy(update={"reason": render.whole_sentences(p.reason, REASON_CHARS)})
            for p in answer.picks[: self.settings.agent_max_picks]])
        if not trace.fast_answer:  # the checked picks, as the fast answer streamed them before its message
            self._emit_cards(answer, ctx, emit)
        text = render.answer_text(answer, ctx.ledger)
        # The checked message goes out as the turn's text stream; without a streamed message
        # (native tool mode, fallback) the whole text does.
        show(answer.message if (held or trace.fast_answer) and answer.message.strip() else text)
        trace.latency_seconds = time.perf_counter() - started
        cited = {e: ctx.ledger.evidence[e] for p in answer.picks for e in p.evidence if e in ctx.ledger.evidence}
        titles = {p.item_id: ctx.ledger.candidates.get(p.item_id, p.item_id) for p in answer.picks}
        number = self.sessions.append_turn(session_id, Turn(
            number=0, request=request, attachments={k: str(v) for k, v in (("image", image), ("audio", audio))
                                                          if v is not None},
            answer={**answer.model_dump(), "titles": titles}, text=text, trace=trace.model_dump(),
            created=time.time()))
        result = TurnResult(session_id=session_id, turn=number, request=request, answer=answer, text=text,
                            titles=titles,
                            evidence={k: {"kind": r.kind, "item_id": r.item_id, "text": r.text}
                                      for k, r in cited.items()}, trace=trace)
        emit({"type": "answer", "result": result.model_dump()})
        return result

    # --- the pieces of a turn ---------------------------------------------------------------
    def _opening(self, session, request: str, ctx: TurnContext, tools, prefetched: str = "") -> list[dict]:
        system = load_prompt("agent_system").format(tools=tool_signatures(tools))
        messages = [{"role": "system", "content": system}]
        messages += render.replayed(session.turns[-self.settings.agent_history_turns:]
                                    if self.settings.agent_history_turns else [], self.settings.agent_history_chars)
        memory = render.memory(ctx.user_id, ctx.preferences)
        attachments = "".join(f"\nAttached: {kind}" for kind, path in (("an image", ctx.image),
                                                                       ("a voice message", ctx.audio)) if path)
        shown = render.cut(request, self.settings.agent_request_chars)
        plan = load_prompt("agent_plan").format(memory=memory, request=shown or "(see attachment)",
                                                attachments=attachments)
        if prefetched:
            plan += "\n" + load_prompt("agent_prefetched").format(data=prefetched,
                                                                  max_picks=self.settings.agent_max_picks)
        messages.append({"role": "user", "content": plan})
        return messages

    def _complete(self, messages, tools, ctx: TurnContext, allow_tools: bool, on_token, trace: Trace) -> LLMReply:
        settings = self.settings
        schema = step_schema(tools, ctx.ledger, settings.agent_max_picks, allow_tools)
        if self.llm.native_tools:
            # The schema (then the answer's alone) goes along only when no tools are offered:
            # llama.cpp servers turn response_format into a grammar that leaves no room for a tool call.
            reply = self.llm.complete(messages, tools=openai_tools(tools) if allow_tools else None,
                                      json_schema=None if allow_tools else schema,
                                      max_tokens=settings.llm_max_tokens, on_token=on_token)
        else:
            reply = self.llm.complete(messages, json_schema=schema, max_tokens=settings.llm_max_tokens,
                                      on_token=on_token)
        self._record(reply, trace, "step")
        return reply

    @staticmethod
    def _record(reply: LLMReply, trace: Trace, name: str) -> None:
        trace.steps.append(StepTrace(kind="llm", name=name, seconds=round(reply.seconds, 3),
                                     prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                                     cached_tokens=reply.cached_tokens, prompt_seconds=reply.prompt_seconds,
                                     generation_seconds=reply.generation_seconds,
                                     output=reply.content[:2000] or None))
        trace.llm_seconds += reply.seconds
        trace.prompt_tokens += reply.prompt_tokens
        trace.completion_tokens += reply.completion_tokens
        trace.cached_tokens += reply.cached_tokens

    @staticmethod
    def _parse(reply: LLMReply, tools) -> ToolStep | AnswerStep:
        if reply.tool_calls:
            call = reply.tool_calls[0]  # one call per step keeps the loop simple and traceable
            return tool_step(call.name, call.arguments, tools)
        return parse_step(reply.content, tools)

    def _invoke(self, name: str, arguments: dict, tools, trace: Trace, emit: EventCallback,
                prefetched: bool = False) -> str:
        """Run one tool (traced, streamed as events); a PrismError becomes text the model reads."""
        tool = next(t for t in tools if t.name == name)
        emit({"type": "tool", "status": "start", "name": name, "arguments": arguments})
        began = time.perf_counter()
        error = None
        try:
            output = str(tool.invoke(arguments))
        except PrismError as exc:  # bad input from the model (unknown user, item, ...): the model is told
            output, error = f"error: {exc}", str(exc)
        seconds = time.perf_counter() - began
        trace.tool_calls += 1
        trace.tool_seconds += seconds
        trace.steps.append(StepTrace(kind="tool", name=name, arguments=arguments, seconds=round(seconds, 3),
                                     output=output[:2000], error=error, prefetched=prefetched))
        emit({"type": "tool", "status": "end", "name": name, "seconds": round(seconds, 3), "error": error})
        return output

    @staticmethod
    def _ran_before(call: ToolStep, trace: Trace) -> bool:
        """Whether this turn already ran ``call``'s tool with the same arguments (None-valued
        arguments, case and surrounding spaces ignored), by prefetch or at the model's request."""
        def key(arguments: dict | None) -> dict:
            return {k: v.strip().casefold() if isinstance(v, str) else v
                    for k, v in (arguments or {}).items() if v is not None}

        return any(s.kind == "tool" and s.name == call.tool and key(s.arguments) == key(call.arguments)
                   for s in trace.steps)

    def _prefetch(self, request: str, ctx: TurnContext, tools, trace: Trace, emit: EventCallback) -> str:
        """Run the tool calls no model needs to choose, before the first LLM step: a voice message
        is transcribed and its words searched, an attached image searched by its poster vector
        and caption, the user's words searched as written (unless they say nothing about a film
        and an image, a voice message or a linked user says more), and a linked user's own
        ranking fetched when the request names nothing else. Returns their results as data blocks."""
        calls: list[tuple[str, dict]] = []
        if ctx.audio is not None:
            calls.append(("transcribe_audio", {}))
        if ctx.image is not None:
            calls.append(("search_by_image", {}))
        if request and (constraints.says_what_it_wants(request) or not (ctx.image or ctx.audio or ctx.user_id)):
            calls.append(("search_catalog", {"query": request}))
        if ctx.user_id and ctx.image is None and ctx.audio is None:
            calls.append(("recommend_for_user", {}))
        blocks = []
        for name, arguments in calls:
            output = self._invoke(name, arguments, tools, trace, emit, prefetched=True)
            blocks.append(as_data(name, output))
            if name == "transcribe_audio":
                heard = [r.text for r in ctx.ledger.evidence.values() if r.kind == "user_voice"]
                if heard and heard[-1].strip():
                    trace.topic = trace.topic or heard[-1]
                    blocks.append(as_data("search_catalog", self._invoke(
                        "search_catalog", {"query": heard[-1]}, tools, trace, emit, prefetched=True)))
        ctx.ledger.settle()  # the user's own words, image and history outrank the model's rewrites
        return "\n".join(blocks)

    def _run_tool(self, call: ToolStep, reply: LLMReply, tools, ctx: TurnContext, trace: Trace,
                  emit: EventCallback) -> list[dict]:
        output = self._invoke(call.tool, call.arguments, tools, trace, emit)
        data = load_prompt("agent_explain").format(data=as_data(call.tool, output),
                                                   max_picks=self.settings.agent_max_picks)
        if reply.tool_calls:
            native = reply.tool_calls[0]
            return [{"role": "assistant", "content": None, "tool_calls": [
                        {"id": native.id or "call_0", "type": "function",
                         "function": {"name": native.name, "arguments": native.arguments or "{}"}}]},
                    {"role": "tool", "tool_call_id": native.id or "call_0", "content": data}]
        return [{"role": "assistant", "content": reply.content}, {"role": "user", "content": data}]

    def _tools_answer(self, ctx: TurnContext, request: str, trace: Trace, emit: EventCallback) -> Answer | None:
        """The fast answer's picks (settings.agent_fast_answer): the prefetched tools' best-ranked
        candidates, each with an extractive reason, streamed as cards at once. None when the
        tools found nothing to pick (the model's steps take over)."""
        spare = self._spare(Answer(message="", picks=[]), ctx)[: self.settings.agent_max_picks]
        if not spare:
            return None
        answer = Answer(message="", picks=[self._code_pick(i, ctx, request) for i in spare])
        trace.fast_answer = True
        self._emit_cards(answer, ctx, emit)
        return answer

    @staticmethod
    def _emit_cards(answer: Answer, ctx: TurnContext, emit: EventCallback) -> None:
        """A ``card`` event per pick (title, reason, cited evidence), before the message is ready."""
        for pick in answer.picks:
            cited = [ctx.ledger.evidence[e] for e in pick.evidence if e in ctx.ledger.evidence]
            emit({"type": "card", "item_id": pick.item_id, "title": ctx.ledger.candidates.get(pick.item_id, ""),
                  "reason": pick.reason,
                  "evidence": [{"id": r.id, "kind": r.kind, "text": r.text} for r in cited]})

    def _fast_message(self, request: str, answer: Answer, ctx: TurnContext, trace: Trace) -> str:
        """The fast answer's message: one short LLM step over the chosen picks' lines (title,
        year, genres), no tools, no re-ask; '' when the step fails (code then writes the message).
        The cards already quote each film's evidence: given the plots, the model copied them."""
        records = self.service.store.get_items([p.item_id for p in answer.picks])
        lines = "\n".join(f"- {film_line(ctx.ledger.candidates.get(p.item_id, ''), records.get(p.item_id))}"
                          for p in answer.picks)
        prompt = load_prompt("agent_message").format(
            memory=render.memory(ctx.user_id, ctx.preferences), request=render.cut(request, 300),
            picks=as_data("chosen", lines), new_user=NEW_USER_NOTE if ctx.new_user else "")
        messages = [{"role": "system", "content": load_prompt("agent_message_system")},
                    {"role": "user", "content": prompt}]
        schema = {"type": "object", "properties": {"message": {"type": "string", "maxLength": FAST_MESSAGE_CHARS}},
                  "required": ["message"]}
        try:
            reply = self.llm.complete(messages, json_schema=schema, max_tokens=FAST_MESSAGE_TOKENS)
        except LLMError as error:
            trace.steps.append(StepTrace(kind="llm", name="message", seconds=0.0, error=str(error)))
            return ""
        self._record(reply, trace, "message")
        try:
            message = json.loads(reply.content).get("message", "")
        except (ValueError, AttributeError):
            return ""
        if not isinstance(message, str) or not any(names(message, ctx.ledger.candidates.get(p.item_id, ""))
                                                   for p in answer.picks):
            # "I'm interested in an animated film about a prince": a message that names none of
            # the films restated the request, often as if the user spoke.
            return ""
        return message.strip()

    def _keep_tool_order(self, answer: Answer, ctx: TurnContext, request: str, trace: Trace) -> Answer:
        """The tools' order is the default order: a pick ranked below the first ``max_picks`` of
        every tool result that returned it gives way to the best-ranked candidate not yet picked
        (with an extractive reason). The constraints the user stated are already applied to that
        order (:mod:`prism.agent.constraints` filters and re-ranks every tool result), so they
        never need a lower pick; the trace records each replacement and what was stated."""
        top = self.settings.agent_max_picks
        stated = ctx.constraints.describe() or "; ".join(f"{p.kind} {p.value}" for p in ctx.preferences)
        below = [p for p in answer.picks if ctx.ledger.ranks.get(p.item_id, 0) >= top]
        if not below:
            return answer
        trace.below_top = [f"{p.item_id} (rank {ctx.ledger.ranks[p.item_id] + 1}): replaced"
                           + (f"; stated constraints already order the candidates: {stated}" if stated else
                              ", no stated constraint") for p in below]
        spare = self._spare(answer, ctx)
        picks = []
        for pick in answer.picks:
            if pick in below and spare:
                pick = self._code_pick(spare.pop(0), ctx, request)
            picks.append(pick)
        return answer.model_copy(update={"picks": picks})

    def _spare(self, answer: Answer, ctx: TurnContext) -> list[str]:
        """Candidates in the first ``max_picks`` of a tool result, best rank first, not yet
        picked, with evidence of their own."""
        picked = {p.item_id for p in answer.picks}
        top = self.settings.agent_max_picks
        ranked = sorted(((r, i) for i, r in ctx.ledger.ranks.items() if r < top and i not in picked), key=lambda x: x[0])
        return [i for _, i in ranked
                if any(e.item_id == i and e.kind not in USER_KINDS for e in ctx.ledger.evidence.values())]

    @staticmethod
    def _code_pick(item_id: str, ctx: TurnContext, request: str) -> Pick:
        """A pick written by code: the item's first evidence and an extractive reason."""
        refs = [e.id for e in ctx.ledger.evidence.values() if e.item_id == item_id and e.kind not in USER_KINDS]
        own_plot(ctx, item_id)
        return extractive_pick(Pick(item_id=item_id, reason="", evidence=refs[:1]), ctx.ledger, request, REASON_CHARS)

    def _fill(self, answer: Answer, ctx: TurnContext, request: str, trace: Trace) -> Answer:
        """An answer that picked some but fewer than ``max_picks`` items, completed with the
        best-ranked spare candidates: the tools' order decides what else is worth showing.
        An answer with no picks (a question back, small talk) stays as it is."""
        missing = self.settings.agent_max_picks - len(answer.picks)
        if not self.settings.agent_fill_picks or not answer.picks or missing <= 0:
            return answer
        added = [self._code_pick(i, ctx, request) for i in self._spare(answer, ctx)[:missing]]
        trace.filled = [p.item_id for p in added]
        return answer.model_copy(update={"picks": [*answer.picks, *added]}) if added else answer

    def _faithful(self, answer: Answer, ctx: TurnContext, request: str, trace: Trace) -> Answer:
        """``answer`` with every reason its evidence does not support replaced by an extractive
        one (after the one re-ask); the turn's supported-reason rate goes to the trace."""
        unsupported = {v.item_id for v in reason_violations(answer, ctx.ledger, self.service.store, request)}
        trace.reasons = len(answer.picks)
        trace.supported_reasons = len(answer.picks) - len(unsupported)
        if not unsupported:
            return answer
        for item_id in unsupported:
            own_plot(ctx, item_id)
        return answer.model_copy(update={"picks": [
            extractive_pick(p, ctx.ledger, request, REASON_CHARS) if p.item_id in unsupported else p
            for p in answer.picks]})

    @staticmethod
    def _earlier_titles(session) -> dict[str, str]:
        """Titles of the previous answer's picks: after "not that one" they are no candidates,
        but a message must not name them as if they were picks."""
        if not session.turns or not session.turns[-1].answer:
            return {}
        return dict(session.turns[-1].answer.get("titles") or {})

    def _last_picks(self, session) -> list[tuple[str, int | None]]:
        """(item id, year) of the previous turn's picks: what "older" and "not that one" refer to."""
        if not session.turns or not session.turns[-1].answer:
            return []
        ids = [p["item_id"] for p in session.turns[-1].answer.get("picks", [])]
        records = self.service.store.get_items(ids)
        years = {i: r["metadata"].get("year") for i, r in records.items()}
        return [(i, int(years[i]) if isinstance(years.get(i), (int, float)) else None) for i in ids]

    def _fallback(self, ctx: TurnContext) -> Answer:
        """The candidates the tools found, each with its own first evidence: grounded by construction."""
        picks = []
        for item_id, title in ctx.ledger.candidates.items():
            refs = [r.id for r in ctx.ledger.evidence.values() if r.item_id == item_id and r.kind != "history"]
            if refs:
                picks.append(Pick(item_id=item_id, reason=f"{title} matched your request.", evidence=refs[:1]))
        message = ("Here is what I found for you." if picks
                   else "Sorry, I could not work out an answer this time. Could you rephrase the request?")
        return Answer(message=message, picks=picks[: self.settings.agent_max_picks])
