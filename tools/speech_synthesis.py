"""Synthesise speech with Debian's espeak-ng (demo clips, test and benchmark voice queries).

Prism's data has no recorded audio; synthetic speech is a real signal for a real speech
recogniser, and results that use it say so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from prism.errors import PrismError


def speak(text: str, path: Path, voice: str = "en-us", words_per_minute: int = 150) -> Path:
    """Write ``text`` spoken by espeak-ng as a WAV file at ``path`` (atomically) and return it."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise PrismError("espeak-ng is not installed (apt-get install espeak-ng); it synthesises the demo speech")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    subprocess.run([binary, "-v", voice, "-s", str(words_per_minute), "-w", str(partial), text],
                   check=True, capture_output=True)
    partial.replace(path)
    return path
