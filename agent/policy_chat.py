"""A scripted chat model for the HTTP and browser tests and the soak bench (``bench/soak.py``),
where requests arrive concurrently and in any order; never a user's chat model: its reply is a fixed function of the turn so far, not a queue of replies.

Policy (the JSON-schema step protocol of ``agent.steps``): attached image and no caption
yet → caption_image; attached voice and no transcript yet → transcribe_audio; no search
yet → search_catalog with the caption, the transcript or the request; then the answer:
the first item of the image search if there is one, else of the first text search, citing
its first evidence id. (The agent runs the obvious searches itself before the first step,
so with prefetching on, the answer comes at once.) Asked for a message alone (a fast answer,
``settings.agent_fast_answer``), it writes one naming the request and the first film. ``delay`` seconds per call make
overlaps observable; ``spans`` records (session request, start, end) per call.
"""

from __future__ import annotations

import json
import re
import threading
import time

from prism.agent.llm import LLMReply


class PolicyChat:
    native_tools = False
    name = "policy"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.spans: list[tuple[str, float, float]] = []
        self._lock = threading.Lock()

    def complete(self, messages, *, tools=None, json_schema=None, max_tokens=256, on_token=None) -> LLMReply:
        start = time.perf_counter()
        time.sleep(self.delay)
        opening = next(i for i in range(len(messages) - 1, -1, -1)
                       if messages[i]["role"] == "user" and messages[i]["content"].count("Request:"))
        request = re.search(r"Request: (.*)", messages[opening]["content"]).group(1)
        turn = "\n".join(m["content"] or "" for m in messages[opening:])
        if json_schema and set(json_schema.get("properties", {})) == {"message"}:  # a fast answer's message
            first = re.search(r"^- (.+?)(?: \(\d{4}\))?(?::|$)", turn, re.M)
            reply = {"message": f"For '{request}', try {first.group(1) if first else 'these'}."}
        elif "Attached: an image" in turn and "user_image" not in turn:
            reply = {"tool": "caption_image", "arguments": {}}
        elif "Attached: a voice message" in turn and "user_voice" not in turn:
            reply = {"tool": "transcribe_audio", "arguments": {}}
        elif 'tool="search_catalog"' not in turn and 'tool="search_by_image"' not in turn:
            said = re.search(r'user_(?:image|voice)[^"]*"(.*)"', turn)
            reply = {"tool": "search_catalog", "arguments": {"query": said.group(1) if said else request}}
        else:
            tag = '<data tool="search_by_image">' if 'tool="search_by_image"' in turn else '<data tool="search_catalog">'
            results = turn[turn.index(tag):]
            item = re.search(r"^item (\S+):", results, re.M).group(1)
            evidence = re.search(r"^  (E\d+) ", results[results.index(f"item {item}:"):], re.M).group(1)
            reply = {"answer": {"message": f"For '{request}', try this.",
                                "picks": [{"item_id": item, "reason": "It matches what you asked for.",
                                           "evidence": [evidence]}]}}
        text = json.dumps(reply)
        if on_token:
            for i in range(0, len(text), 6):
                on_token(text[i:i + 6])
        with self._lock:
            self.spans.append((request, start, time.perf_counter()))
        return LLMReply(content=text, prompt_tokens=len(turn.split()), completion_tokens=len(text.split()),
                        first_token_seconds=0.0)
