"""The BLIP captioner: a transformers ``BlipForConditionalGeneration`` from a local folder.

The folder is what ``save_pretrained`` writes for the model and its ``BlipProcessor``
(e.g. a copy of Salesforce/blip-image-captioning-base); nothing is fetched from a hub.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from prism.errors import ModelMissingError
from prism.tools.captioning.base import Caption, CaptionError
from prism.tools.provenance import Provenance
from prism.weights import sha256_file

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class BlipCaptioner:
    """Greedy BLIP captions with provenance. The model loads once, in the constructor.

    Raises ModelMissingError naming ``model_dir`` when it is missing, lacks ``config.json`` or a
    single weights file (``model.safetensors`` / ``pytorch_model.bin``), or does not load.
    ``device`` is ``"cpu"``, ``"cuda"`` or ``"auto"`` (cuda when available).
    """

    name = "blip"

    def __init__(self, model_dir: Path, max_new_tokens: int = 30, device: str = "cpu") -> None:
        # deferred: transformers loads only when the BLIP backend is chosen
        from transformers import BlipForConditionalGeneration, BlipProcessor
        from transformers import __version__ as transformers_version

        model_dir = Path(model_dir).expanduser()
        if not model_dir.is_dir():
            raise ModelMissingError(f"BLIP model folder {model_dir} does not exist")
        if not (model_dir / "config.json").is_file():
            raise ModelMissingError(f"BLIP model folder {model_dir} has no config.json")
        weights = next((model_dir / name for name in WEIGHT_FILES if (model_dir / name).is_file()), None)
        if weights is None:
            raise ModelMissingError(f"BLIP model folder {model_dir} has no weights file ({' or '.join(WEIGHT_FILES)})")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self._processor = BlipProcessor.from_pretrained(model_dir, local_files_only=True)
            self._model = BlipForConditionalGeneration.from_pretrained(model_dir, local_files_only=True)
            self._model.to(device).eval()
        except Exception as exc:
            raise ModelMissingError(f"BLIP model folder {model_dir} could not be loaded: {exc}") from exc
        self._device = device
        self._max_new_tokens = max_new_tokens
        # A local load sets name_or_path to the folder path; only a hub id is worth recording.
        name = self._model.config.name_or_path
        self._model_name = name if name and not Path(name).exists() else model_dir.name
        self._version = f"transformers {transformers_version}"
        self._weights_sha256 = sha256_file(weights)

    def caption(self, image: Image.Image) -> Caption:
        """Caption one image; ``mean_token_prob`` is the mean probability of the chosen tokens."""
        try:
            inputs = self._processor(images=image.convert("RGB"), return_tensors="pt").to(self._device)
            with torch.inference_mode():
                out = self._model.generate(
                    **inputs,
                    max_new_tokens=self._max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    output_scores=True,
                    return_dict_in_generate=True,
                )
                token_probs = self._model.compute_transition_scores(
                    out.sequences, out.scores, normalize_logits=True
                ).exp()
            text = self._processor.decode(out.sequences[0], skip_special_tokens=True).strip()
        except Exception as exc:
            raise CaptionError(f"BLIP captioner failed on the image: {exc}") from exc
        if not text:
            raise CaptionError("BLIP captioner produced an empty caption")
        return Caption(
            text=text,
            provenance=Provenance(
                backend=self.name,
                model=self._model_name,
                version=self._version,
                weights_sha256=self._weights_sha256,
                confidences={"mean_token_prob": float(token_probs[0].mean())},
            ),
        )
