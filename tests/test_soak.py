"""The soak bench (bench/soak.py), small: three sessions mixing chat, search, recommend and
uploads with every kind of bad request among them, over a copy of the API test store. Its
timings are reported, never asserted; what must hold is asserted: no 5xx, no transport error,
no failed well-formed request, no cross-talk, each bad request refused with its own status, and
a server that stops with requests in flight."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "soak.py"


def test_a_small_soak_keeps_every_promise(api_home, tmp_path):
    out = tmp_path / "soak.json"
    env = {**os.environ, "PRISM_MULTILINGUAL_MODEL": "none"}
    done = subprocess.run([sys.executable, str(BENCH), "--home", str(api_home["home"]), "--sessions", "3",
                           "--requests", "4", "--bad", "4", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["server_errors_5xx"] == 0 and result["transport_errors"] == 0
    assert result["well_formed_failures"] == 0, result["phases"]
    assert result["cross_talk"]["count"] == 0, result["cross_talk"]
    bad = result["bad_requests"]
    assert bad["sent"] == 12 and len(bad["by_kind"]) == 11
    assert bad["unexpected_status"] == 0, bad["by_kind"]
    assert result["phases"]["clean"]["requests"] == result["phases"]["mixed"]["requests"] == 12
    assert result["shutdown"]["stopped"] and len(result["shutdown"]["in_flight"]) == 3
    assert not (api_home["home"] / "uploads").exists() or not any(
        p.name.startswith("soak-") for p in (api_home["home"] / "media").glob("*"))
