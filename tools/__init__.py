"""Prism's tools: each module does one thing with a typed input and output.

They are usable alone (``from tools.embed_text import embed_text``), from the service layer,
and later by the agent.
"""
