"""Build the demo catalog's posters from public-domain / CC0 photos (scikit-image samples).

Run once by a maintainer (the posters are committed):
    python demo/make_posters.py SOURCE_DIR
where SOURCE_DIR holds astronaut.png, rocket.jpg, hubble_deep_field.jpg, chelsea.png and
coffee.png from scikit-image's ``skimage/data``. Each poster is the photo cropped to 2:3 with
the film's title set in a band, so the OCR path has real text to read.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

POSTERS = {
    "quiet-orbit": ("astronaut.png", "QUIET ORBIT"),
    "launch-window": ("rocket.jpg", "LAUNCH WINDOW"),
    "deep-field": ("hubble_deep_field.jpg", "THE DEEP FIELD"),
    "whiskers": ("chelsea.png", "WHISKERS"),
    "morning-roast": ("coffee.png", "MORNING ROAST"),
}
SIZE = (240, 360)


def crop_to_poster(photo: Image.Image) -> Image.Image:
    """Centre-crop to 2:3 and resize to SIZE."""
    width, height = photo.size
    target = SIZE[0] / SIZE[1]
    if width / height > target:
        new_width = int(height * target)
        box = ((width - new_width) // 2, 0, (width - new_width) // 2 + new_width, height)
    else:
        new_height = int(width / target)
        box = (0, (height - new_height) // 2, width, (height - new_height) // 2 + new_height)
    return photo.convert("RGB").crop(box).resize(SIZE, Image.Resampling.LANCZOS)


def make_poster(photo: Image.Image, title: str) -> Image.Image:
    poster = crop_to_poster(photo)
    draw = ImageDraw.Draw(poster)
    font = ImageFont.load_default(size=30)
    while draw.textlength(title, font=font) > SIZE[0] - 16:
        font = ImageFont.load_default(size=font.size - 2)
    band_top = SIZE[1] - 64
    draw.rectangle((0, band_top, SIZE[0], SIZE[1]), fill=(12, 12, 16))
    x = (SIZE[0] - draw.textlength(title, font=font)) / 2
    draw.text((x, band_top + 16), title, font=font, fill=(245, 240, 220))
    return poster


def main(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name, (photo, title) in POSTERS.items():
        make_poster(Image.open(source / photo), title).save(target / f"{name}.jpg", quality=88)
    # A query photo for the image-search demo: the cat without a title, cropped differently.
    cat = Image.open(source / "chelsea.png").convert("RGB")
    cat.crop((20, 0, cat.width - 20, cat.height)).resize((224, 168)).save(target.parent / "query-cat.jpg", quality=88)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parent / "catalog" / "images")
