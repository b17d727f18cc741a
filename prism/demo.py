"""The demo: ingest the bundled catalog, search it by text, voice and image, then ask the
agent (the embedded LLM calling Prism's tools) for an explained recommendation."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from prism.service import PrismService
from prism.synth import speak

DEMO_CATALOG = Path(__file__).resolve().parents[1] / "demo" / "catalog"


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


def run(out: Console) -> None:
    """Run the whole demo, printing each step's result."""
    from prism.cli import print_search

    service = PrismService()
    out.rule("Prism demo")
    out.print(f"state in {service.settings.home}")
    ensure_demo_audio()
    summary = service.ingest(DEMO_CATALOG)
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
    print_search(service.search(image=DEMO_CATALOG / "query-cat.jpg", k=3))
    out.rule("agent: an explained recommendation from the embedded LLM")
    ask_agent(service, out, "I'd like a calm film about space. What do you recommend, and why?")


def ask_agent(service: PrismService, out: Console, request: str) -> None:
    """One agent turn, streamed: tool calls as they happen, the answer with its evidence."""
    from agent.agent import Agent
    from agent.backends import chat_model

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
              f"{len(t.violations)} grounding violation(s); `prism trace {result.session_id}` shows every step[/]")
