"""Dominant colours of an image, named in plain words."""

from __future__ import annotations

from PIL import Image

# A small fixed vocabulary keeps captions readable and comparable across images.
NAMED_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "dark grey": (70, 70, 70),
    "grey": (128, 128, 128),
    "light grey": (192, 192, 192),
    "white": (250, 250, 250),
    "red": (200, 30, 30),
    "dark red": (110, 15, 20),
    "orange": (235, 130, 30),
    "brown": (120, 75, 40),
    "beige": (220, 200, 160),
    "yellow": (235, 215, 40),
    "olive": (120, 120, 40),
    "green": (40, 150, 60),
    "dark green": (20, 70, 35),
    "teal": (30, 130, 130),
    "light blue": (130, 180, 230),
    "blue": (40, 80, 200),
    "dark blue": (20, 30, 90),
    "purple": (120, 50, 150),
    "pink": (235, 130, 170),
}


def nearest_colour_name(rgb: tuple[int, int, int]) -> str:
    """The name in NAMED_COLOURS closest to ``rgb`` (Euclidean distance in RGB)."""
    return min(NAMED_COLOURS, key=lambda n: sum((a - b) ** 2 for a, b in zip(NAMED_COLOURS[n], rgb)))


def dominant_colours(image: Image.Image, count: int = 3, min_share: float = 0.1) -> list[str]:
    """Up to ``count`` colour names covering at least ``min_share`` of the image each, largest first."""
    small = image.convert("RGB").resize((64, 64))
    quantised = small.quantize(colors=8, method=Image.Quantize.MEDIANCUT)
    palette = quantised.getpalette() or []
    shares: dict[str, float] = {}
    total = 64 * 64
    for pixels, index in quantised.getcolors() or []:
        rgb = tuple(palette[index * 3 : index * 3 + 3])
        name = nearest_colour_name(rgb)  # type: ignore[arg-type]
        shares[name] = shares.get(name, 0.0) + pixels / total
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])
    return [name for name, share in ranked if share >= min_share][:count]
