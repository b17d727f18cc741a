"""Serve an ASGI app with uvicorn on a free loopback port, in a thread of this process
(the load test's own server, the HTTP and browser tests)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def serve_in_thread(app, startup_timeout: float = 600.0, stats: dict | None = None,
                    grace: float | None = None) -> Iterator[str]:
    """Yield the base URL once the server has started (its lifespan, e.g. model warm-up, done).
    On exit the server is asked to stop, waiting ``grace`` seconds (None: as long as it takes)
    for requests in flight before it cancels them, as ``prism serve`` does; ``stats`` (if given) receives ``shutdown_seconds`` and
    ``stopped`` (False when it was still running 30 s later)."""
    # deferred: uvicorn loads only where a server is started
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=grace))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asked = time.perf_counter()
        server.should_exit = True
        thread.join(timeout=30)
        if stats is not None:
            stats.update(shutdown_seconds=round(time.perf_counter() - asked, 2), stopped=not thread.is_alive())
