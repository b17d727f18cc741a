"""The CLI's two consoles (results on stdout, progress and errors on stderr), its one way to
fail, and renderers shared by several commands. Catalog text is printed as text, never markup."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from prism.search import SearchResult

console = Console(stderr=True)
out = Console()


def fail(message: str) -> NoReturn:
    """Print ``message`` as an error on stderr and exit with status 2."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def print_search(result: SearchResult) -> None:
    """Render a search result as a table with the evidence that matched."""
    if result.query_transcript is not None:
        out.print(f"[bold]heard:[/] {escape(result.query_transcript)}", highlight=False)
    if result.query_caption is not None:
        out.print(f"[bold]image:[/] {escape(result.query_caption)}", highlight=False)
    table = Table(show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("score", justify="right")
    table.add_column("evidence")
    for rank, hit in enumerate(result.hits, start=1):
        lines = [f"[dim]{e.channel}→{escape(e.field)} ({e.similarity:.2f})[/] {escape(e.text[:160])}"
                 for e in hit.evidence[:3]]
        table.add_row(str(rank), f"{escape(hit.title)}\n[dim]{escape(hit.item_id)}[/]", f"{hit.score:.4f}",
                      "\n".join(lines))
    out.print(table)
