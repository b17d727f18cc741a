"""The agent's commands: ``prism ask``, ``prism chat``, ``prism trace`` and ``prism serve``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from prism.agent.sessions import SessionStore
from prism.cli.output import console, fail, out
from prism.errors import PrismError
from prism.service import PrismService
from prism.settings import get_settings

ASK_HELP = ("Ask the agent one request and get explained recommendations.\n\n"
            "The answer is streamed; --json prints the structured result instead: picks with reasons, the cited "
            "evidence (plot spans, captions, transcripts, history items) and the turn's trace.")
CHAT_HELP = ("Chat with the agent. Type a request; '/image PATH' or '/audio PATH' attaches a file to the next "
             "message; '/quit' ends. The session (preferences, history, traces) is kept in SQLite under PRISM_HOME.")


def _prompted_lines():
    """Lines typed at a ``you>`` prompt until end of input (Ctrl-D) or Ctrl-C."""
    while True:
        try:
            yield input("you> ")
        except (EOFError, KeyboardInterrupt):
            return


def make_agent():
    """The agent over the process's settings: the configured chat model and session store."""
    # deferred: LangChain and the chat backends load only when an agent command runs
    from prism.agent.backends import chat_model
    from prism.agent.orchestrator import Agent

    service = PrismService()
    return Agent(service, chat_model(service.settings))


def run_turn(agent, session: str, request: str, image: Path | None, audio: Path | None, user: str | None,
             stream: bool):
    shown: list[str] = []

    def on_event(event: dict) -> None:
        if event["type"] == "token" and stream:
            shown.append(event["text"])
            out.print(escape(event["text"]), end="", highlight=False, soft_wrap=True)
        elif event["type"] == "tool" and event["status"] == "start":
            console.print(f"[dim]→ {event['name']} {json.dumps(event['arguments'], ensure_ascii=False)}[/]",
                          highlight=False)
        elif event["type"] == "step" and event["status"] != "ok":
            console.print(f"[dim]↻ {event['status']}: {escape(event['error'][:160])}[/]", highlight=False)

    result = agent.run_turn(session, request, image=image, audio=audio, user_id=user, on_event=on_event)
    if stream:
        # What streamed was the checked message (or the whole text); the rest follows it.
        streamed = "".join(shown)
        rest = result.text[len(streamed):] if result.text.startswith(streamed) else ""
        out.print(escape(rest), highlight=False, soft_wrap=True)
    return result


def ask(
    request: Annotated[str, typer.Argument(help="What you are looking for.")] = "",
    user: Annotated[Optional[str], typer.Option("--user", help="Link a user (their ratings history).")] = None,
    image: Annotated[Optional[Path], typer.Option("--image", help="Attach an image.")] = None,
    audio: Annotated[Optional[Path], typer.Option("--audio", help="Attach a voice message.")] = None,
    session: Annotated[Optional[str], typer.Option("--session", help="Continue this session (default: a new one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the structured result as JSON.")] = False,
) -> None:
    session = session or time.strftime("ask-%Y%m%d-%H%M%S")
    try:
        result = run_turn(make_agent(), session, request, image, audio, user, stream=not as_json)
    except PrismError as exc:
        fail(str(exc))
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        console.print(f"[dim]session {session}: {result.trace.latency_seconds:.1f}s, "
                      f"{result.trace.tool_calls} tool calls, {result.trace.prompt_tokens}+"
                      f"{result.trace.completion_tokens} tokens[/]", highlight=False)

def chat(
    user: Annotated[Optional[str], typer.Option("--user", help="Link a user (their ratings history).")] = None,
    session: Annotated[Optional[str], typer.Option("--session", help="Continue this session (default: a new one).")] = None,
) -> None:
    session = session or time.strftime("chat-%Y%m%d-%H%M%S")
    try:
        agent = make_agent()
    except PrismError as exc:
        fail(str(exc))
    console.print(f"[bold]Prism chat[/] (session {session}; /image PATH, /audio PATH, /quit)", highlight=False)
    image = audio = None
    for line in sys.stdin if not sys.stdin.isatty() else _prompted_lines():
        line = line.strip()
        if not line:
            continue
        if line in ("/quit", "/exit"):
            break
        if line.startswith(("/image ", "/audio ")):
            path = Path(line.split(" ", 1)[1].strip()).expanduser()
            if not path.is_file():
                console.print(f"[red]no such file: {escape(str(path))}[/]")
                continue
            image, audio = (path, audio) if line.startswith("/image") else (image, path)
            console.print(f"[dim]attached {escape(str(path))}[/]")
            continue
        try:
            run_turn(agent, session, line, image, audio, user, stream=True)
        except PrismError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}")
        image = audio = None
        user = None  # linked once; the session remembers it

def trace(
    session: Annotated[str, typer.Argument(help="The session id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the session as JSON.")] = False,
) -> None:
    """Show a session's turns: tool calls with arguments and durations, tokens, latency, violations."""
    found = SessionStore(get_settings().sessions_path).load(session)
    if found is None:
        fail(f"no session '{session}' in {get_settings().sessions_path}")
    if as_json:
        out.print_json(found.model_dump_json())
        return
    out.print(f"[bold]session {escape(found.id)}[/] user {found.user_id or '-'}; preferences: "
              + (", ".join(f"{p.kind} {escape(p.value)}" for p in found.preferences) or "-"), highlight=False)
    for turn in found.turns:
        t = turn.trace
        table = Table(title=f"turn {turn.number}: {escape(turn.request[:80])}", title_justify="left")
        for column in ("step", "seconds", "tokens in/out (cached)", "detail"):
            table.add_column(column)
        for step in t.get("steps", []):
            tokens = (f"{step['prompt_tokens']}/{step['completion_tokens']} ({step['cached_tokens']})"
                      if step["kind"] == "llm" else "")
            detail = json.dumps(step["arguments"], ensure_ascii=False) if step.get("arguments") else ""
            if step.get("error"):
                detail += f" error: {step['error']}"
            table.add_row(f"{step['kind']} {step['name']}", f"{step['seconds']:.2f}", tokens, escape(detail[:120]))
        out.print(table)
        first = t.get("first_token_seconds")
        out.print(f"  latency {t['latency_seconds']:.2f}s, first token "
                  f"{'-' if first is None else f'{first:.2f}s'}, LLM {t['llm_seconds']:.2f}s, tools "
                  f"{t['tool_seconds']:.2f}s, tokens {t['prompt_tokens']}+{t['completion_tokens']} "
                  f"({t['cached_tokens']} cached), invalid steps {t['invalid_steps']}, violations "
                  f"{len(t['violations'])}, dropped {t['dropped_picks']}, fallback {t['fallback']}",
                  highlight=False)

def serve(
    host: Annotated[Optional[str], typer.Option("--host", help="Address to bind (default: settings.api_host, 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="Port (default: settings.api_port, 8000).")] = None,
) -> None:
    """Serve the HTTP API (docs at /docs) and the web chat (at /). Models load once, at start-up.
    Beyond loopback, bearer-token auth is on: set PRISM_API_TOKEN."""
    # deferred: the web stack (FastAPI, uvicorn) loads only for `prism serve`
    import uvicorn

    from prism.api.app import create_app

    settings = get_settings()
    host, port = host or settings.api_host, port if port is not None else settings.api_port
    try:
        app_ = create_app(host=host, warm=settings.api_warm)
    except PrismError as exc:
        fail(str(exc))
    console.print(f"Prism on http://{host}:{port} (API docs at /docs); loading models...", highlight=False)
    uvicorn.run(app_, host=host, port=port, log_level="info", timeout_graceful_shutdown=settings.api_shutdown_seconds)
