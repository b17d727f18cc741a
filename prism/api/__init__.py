"""Prism over HTTP: the FastAPI app (``prism serve``), its uploads checks and the web chat page."""
