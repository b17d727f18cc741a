"""A Chroma server (`chroma run`) started by this process on loopback: for the tests, the
benchmarks and the Ray ingest, which write to a server rather than to an embedded store.

Production points ``PRISM_CHROMA_HOST``/``PRISM_CHROMA_PORT`` at a server it runs itself; this
module only starts one for the length of a ``with`` block.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prism.errors import PrismError


@dataclass(frozen=True)
class ChromaServer:
    host: str
    port: int
    path: Path  # the server's data folder
    log: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def chroma_server(path: Path, timeout: float = 60.0) -> Iterator[ChromaServer]:
    """``chroma run`` over the data folder ``path`` on a free loopback port, listening before
    the block starts and stopped after it. PrismError (with the server's last output) when it
    exits or does not listen within ``timeout`` seconds."""
    chroma = Path(sys.executable).with_name("chroma")
    path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = path.parent / f"{path.name}.chroma.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([str(chroma), "run", "--path", str(path), "--host", "127.0.0.1",
                                    "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not _listening(port):
                if process.poll() is not None:
                    raise PrismError(f"chroma run exited with {process.returncode}: {log_path.read_text()[-1000:]}")
                if time.monotonic() > deadline:
                    raise PrismError(f"chroma run did not listen within {timeout:.0f} s")
                time.sleep(0.2)
            yield ChromaServer("127.0.0.1", port, path, log_path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
