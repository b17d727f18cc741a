"""``python -m prism.cli``: the ``prism`` command."""

from prism.cli.main import main

main()
