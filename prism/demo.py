"""The demo: ingest the bundled catalog, search it by text, voice and image, then ask the
agent (the embedded LLM calling Prism's tools) for an explained recommendation."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from importlib.resources import files
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from prism.agent.backends import chat_model
from prism.agent.orchestrator import Agent
from prism.cli.output import print_search
from prism.service import PrismService
from prism.tools.speech_synthesis import speak

# The bundled catalog, package data of prism.demo_data (the repository's demo/ folder).
DEMO_CATALOG = Path(str(files("prism.demo_data").joinpath("catalog")))


def ensure_demo_audio(catalog: Path = DEMO_CATALOG) -> list[Path]:
    """Synthesise the catalog's audio clips that are not there yet; return all clip paths."""
    scripts = json.loads((catalog / "audio_scripts.json").read_text())
    paths = []
    for relative, text in scripts.items():
        path = catalog / relative
        if not path.is_file():
            speak(text, path)
        paths.append(path)
    return paths


def working_catalog(home: Path) -> Path:
    """A copy of the bundled catalog under ``home`` (the installed package stays read-only),
    with its audio clips synthesised."""
    catalog = home / "demo-catalog"
    shutil.copytree(DEMO_CATALOG, catalog, dirs_exist_ok=True, ignore=shutil.ignore_patterns("audio", "__pycache__"))
    ensure_demo_audio(catalog)
    return catalog


def run(out: Console) -> None:
    """Run the whole demo, printing each step's result."""
    service = PrismService()
    out.rule("Prism demo")
    out.print(f"state in {service.settings.home}")
    catalog = working_catalog(service.settings.home)
    summary = service.ingest(catalog)
    out.print(f"ingested {summary.ingested}, updated {summary.updated}, skipped {summary.skipped}, "
              f"failed {len(summary.failed)} in {summary.seconds:.1f}s")
    for failure in summary.failed:
        out.print(f"  failed {failure.source}: {failure.reason}")
    out.rule("text: a calm film about space")
    print_search(service.search(text="a calm film about space", k=3))
    out.rule("Chinese text: 太空迷路的宇航员")
    print_search(service.search(text="太空迷路的宇航员", k=3))
    with tempfile.TemporaryDirectory() as tmp:
        voice = speak("Find me a mystery about a detective at the harbour.", Path(tmp) / "query.wav")
        out.rule("voice (synthesised with espeak-ng)")
        print_search(service.search(audio=voice, k=3))
    out.rule("image: a photo of a cat")
    print_search(service.search(image=catalog / "query-cat.jpg", k=3))
    out.rule("agent: an explained recommendation from the embedded LLM")
    ask_agent(service, out, "I'd like a calm film about space. What do you recommend, and why?")


def ask_agent(service: PrismService, out: Console, request: str) -> None:
    """One agent turn, streamed: tool calls as they happen, the answer with its evidence."""
    out.print(f"[bold]you:[/] {request}")
    out.print("[dim]starting the embedded LLM (first run assembles it from its wheels)...[/]")
    agent = Agent(service, chat_model(service.settings))

    def on_event(event: dict) -> None:
        if event["type"] == "tool" and event["status"] == "start":
            out.print(f"[dim]→ {event['name']} {json.dumps(event['arguments'], ensure_ascii=False)}[/]")

    result = agent.run_turn(time.strftime("demo-%Y%m%d-%H%M%S"), request, on_event=on_event)
    out.print(f"[bold]prism:[/] {escape(result.text)}", highlight=False)
    t = result.trace
    out.print(f"[dim]{t.latency_seconds:.1f}s, {t.tool_calls} tool call(s), {t.prompt_tokens} prompt tokens "
              f"({t.cached_tokens} from the prompt cache), {t.completion_tokens} generated, "
              f"{len(t.violations)} problem(s) in the model's drafts caught by the checks"
              f"{' (message written by code)' if t.message_replaced else ''}; "
              f"`prism trace {result.session_id}` shows every step[/]")
