"""The ``prism`` command line: a thin shell over :class:`prism.service.PrismService`, the
agent and the evaluation suites. ``app`` is the Typer application (:mod:`prism.cli.main`)."""

from prism.cli.main import app, main

__all__ = ["app", "main"]
