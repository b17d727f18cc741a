"""Prism: a multimodal, LLM-centric agent recommender.

The ``prism`` package holds the core: settings, model weights, the catalog format, the
vector store, ingestion and the service layer that the CLI, the HTTP API, the agent tools
and the evaluation suites all call.
"""

__version__ = "0.1.0"
