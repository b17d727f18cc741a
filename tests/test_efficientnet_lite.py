"""EfficientNet-Lite0 in plain torch against the real ImageNet weights."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from prism import weights
from prism.tools.vision.efficientnet_lite import (
    FEATURE_DIM,
    EfficientNetLite0,
    SameConv2d,
    imagenet_class_names,
    load_pretrained,
    preprocess,
)

DEMO = Path(__file__).resolve().parents[1] / "demo" / "catalog"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return load_pretrained(weights.efficientnet_lite0_file(tmp_path_factory.mktemp("cache")))


def top1(net, image):
    with torch.inference_mode():
        probs = torch.softmax(net(preprocess([image])), dim=-1)[0]
    best = int(probs.argmax())
    return imagenet_class_names()[best], float(probs[best])


def test_weights_load_strictly_and_features_are_1280d(net):
    with torch.inference_mode():
        feats = net.features(preprocess([Image.new("RGB", (300, 200), (120, 30, 200))] * 2))
    assert feats.shape == (2, FEATURE_DIM)
    assert torch.isfinite(feats).all()


@pytest.mark.parametrize(
    ("photo", "expected"),
    [("images/morning-roast.jpg", {"espresso", "cup", "coffee mug"}),
     ("query-cat.jpg", {"tabby", "tiger cat", "Egyptian cat"})],
)
def test_real_photos_get_the_right_imagenet_class(net, photo, expected):
    name, confidence = top1(net, Image.open(DEMO / photo))
    assert name in expected
    assert confidence > 0.3


def test_same_padding_matches_tensorflow_output_size():
    conv = SameConv2d(1, 1, 3, stride=2, bias=False)
    assert conv(torch.zeros(1, 1, 224, 224)).shape[-2:] == (112, 112)
    assert conv(torch.zeros(1, 1, 225, 225)).shape[-2:] == (113, 113)


def test_preprocess_handles_any_aspect_and_mode():
    batch = preprocess([Image.new("L", (50, 400)), Image.new("RGBA", (900, 30))])
    assert batch.shape == (2, 3, 224, 224)
    assert batch.dtype == torch.float32


def test_class_names_are_readable_and_complete():
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[0] == "tench" and names[967] == "espresso"


def test_architecture_has_the_reference_parameter_count():
    # EfficientNet-Lite0 has 4.65M parameters.
    assert sum(p.numel() for p in EfficientNetLite0().parameters()) == pytest.approx(4.65e6, rel=0.01)
