"""The ``prism`` command line: a thin shell over :class:`prism.service.PrismService`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from prism.errors import PrismError
from prism.ingest import IngestSummary
from prism.search import SearchResult
from prism.service import PrismService

app = typer.Typer(help="Prism: a multimodal, LLM-centric agent recommender.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console(stderr=True)
out = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="A catalog JSONL file, a folder with catalog.jsonl, or a MovieLens-MM folder.")],
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", min=1, help="Ingest at most N catalog rows.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Caption, transcribe and embed a catalog into the store. Re-running skips unchanged items."""
    service = PrismService()
    progress = Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("new {task.fields[new]} upd {task.fields[upd]} skip {task.fields[skip]} "
                                   "fail {task.fields[fail]}"), TimeElapsedColumn(), console=console)

    def on_batch(summary: IngestSummary, rows: int) -> None:
        progress.update(task, advance=rows, new=summary.ingested, upd=summary.updated, skip=summary.skipped,
                        fail=len(summary.failed))
        if not console.is_terminal:  # a log line per committed batch when output is not a terminal
            console.print(f"committed: seen={summary.seen} ingested={summary.ingested} updated={summary.updated} "
                          f"skipped={summary.skipped} failed={len(summary.failed)}", highlight=False)

    try:
        with progress:
            task = progress.add_task("ingest", total=limit, new=0, upd=0, skip=0, fail=0)
            summary = service.ingest(path, limit=limit, on_batch=on_batch)
    except (PrismError, FileNotFoundError) as exc:
        _fail(str(exc))
    if as_json:
        out.print_json(summary.model_dump_json())
        return
    table = Table(title=f"Ingested {path}")
    for column in ("ingested", "updated", "skipped", "failed", "seconds"):
        table.add_column(column, justify="right")
    table.add_row(str(summary.ingested), str(summary.updated), str(summary.skipped), str(len(summary.failed)),
                  f"{summary.seconds:.1f}")
    out.print(table)
    for failure in summary.failed:
        out.print(f"[red]failed[/] {failure.source}" + (f" ({failure.item_id})" if failure.item_id else "")
                  + f": {failure.reason}", highlight=False)


def print_search(result: SearchResult) -> None:
    """Render a search result as a table with the evidence that matched."""
    if result.query_transcript is not None:
        out.print(f"[bold]heard:[/] {result.query_transcript}", highlight=False)
    if result.query_caption is not None:
        out.print(f"[bold]image:[/] {result.query_caption}", highlight=False)
    table = Table(show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("score", justify="right")
    table.add_column("evidence")
    for rank, hit in enumerate(result.hits, start=1):
        lines = [f"[dim]{e.channel}→{e.field} ({e.similarity:.2f})[/] {e.text[:160]}" for e in hit.evidence[:3]]
        table.add_row(str(rank), f"{hit.title}\n[dim]{hit.item_id}[/]", f"{hit.score:.4f}", "\n".join(lines))
    out.print(table)


@app.command()
def search(
    text: Annotated[Optional[str], typer.Argument(help="What to look for, in English or Chinese.")] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=200, help="How many items to return.")] = 5,
    image: Annotated[Optional[Path], typer.Option("--image", help="Search with an image.")] = None,
    audio: Annotated[Optional[Path], typer.Option("--audio", help="Search with a voice query (transcribed).")] = None,
    where: Annotated[Optional[str], typer.Option("--where", help='A Chroma metadata filter as JSON, e.g. \'{"genres": {"$contains": "Drama"}}\'.')] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Find the nearest items to a text, image or voice query, with the evidence that matched."""
    try:
        filters = json.loads(where) if where else None
    except json.JSONDecodeError as exc:
        _fail(f"--where is not valid JSON: {exc}")
    try:
        result = PrismService().search(text=text, image=image, audio=audio, k=k, where=filters)
    except PrismError as exc:
        _fail(str(exc))
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        print_search(result)


@app.command()
def item(item_id: Annotated[str, typer.Argument(help="The item's id.")]) -> None:
    """Show an ingested item: its text, metadata, captions and transcripts with provenance."""
    record = PrismService().get_item(item_id)
    if record is None:
        _fail(f"no item with id '{item_id}' in the store")
    out.print_json(json.dumps(record, ensure_ascii=False, default=str))


@app.command(name="eval")
def evaluate(
    suite: Annotated[str, typer.Option("--suite", "-s", help="small (CI-sized) or full.")] = "small",
    ratings: Annotated[Optional[Path], typer.Option("--ratings", help="ratings.tsv (default: settings.movielens_dir).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Report folder (default: PRISM_HOME/evals/SUITE).")] = None,
    mmrec: Annotated[Optional[Path], typer.Option("--export-mmrec", help="Only export the leave-last-one, temporal and cold-item splits with item features in MMRec's format to this folder.")] = None,
) -> None:
    """Run an offline evaluation suite over the ingested catalog: JSON, Markdown table, plots."""
    if mmrec is not None:
        try:
            for protocol in ("leave_last_one", "temporal", "cold_items"):
                written = PrismService().export_mmrec(protocol, mmrec, ratings)
                out.print_json(json.dumps({"protocol": protocol, **written}))
        except PrismError as exc:
            _fail(str(exc))
        return
    try:
        results = PrismService().evaluate(suite, ratings, out_dir, log=lambda line: console.print(line, highlight=False))
    except PrismError as exc:
        _fail(str(exc))
    from evals.report import markdown

    out.print(markdown(results), highlight=False, soft_wrap=True)


@app.command()
def demo() -> None:
    """Ingest the bundled demo catalog and run a text, a voice and an image search."""
    from prism import demo as demo_module

    try:
        demo_module.run(out)
    except PrismError as exc:
        _fail(str(exc))


def main() -> None:  # pragma: no cover - console script entry point
    app(sys.argv[1:])


if __name__ == "__main__":  # python -m prism.cli
    main()
