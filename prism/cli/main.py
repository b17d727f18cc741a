"""The ``prism`` command: every command registered on one Typer app, in the order ``--help``
lists them."""

from __future__ import annotations

import sys

import typer

from prism.cli import agent_commands, catalog_commands

app = typer.Typer(help="Prism: a multimodal, LLM-centric agent recommender.", no_args_is_help=True,
                  pretty_exceptions_enable=False)

for command in (catalog_commands.ingest, catalog_commands.search, catalog_commands.item):
    app.command()(command)
app.command(name="eval")(catalog_commands.evaluate)
for command in (catalog_commands.train, catalog_commands.recommend, catalog_commands.demo):
    app.command()(command)
app.command(help=agent_commands.ASK_HELP)(agent_commands.ask)
app.command(help=agent_commands.CHAT_HELP)(agent_commands.chat)
app.command()(agent_commands.trace)
app.command()(agent_commands.serve)


def main() -> None:  # pragma: no cover - console script entry point
    app(sys.argv[1:])
