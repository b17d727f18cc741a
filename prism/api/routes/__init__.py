"""One router per resource: chat, sessions, recommendations, items, the OpenAI-compatible
facade, health and the web page."""
