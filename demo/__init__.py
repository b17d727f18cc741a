"""The demo's bundled catalog (``catalog/``, licence-clean: see ``catalog/LICENSE.md``),
shipped as package data of ``prism.demo_data``; ``make_posters.py`` drew its posters."""
