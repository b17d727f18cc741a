"""Prism's conversational agent: an LLM that calls tools over the service layer and answers with grounded recommendations."""
