"""Remove the language identity from a multilingual text space.

Multilingual encoders place a sentence and its translation close together, but they also
add a shared offset per language: in a catalog that mixes English and Chinese items, a
Chinese query scores every Chinese item above a matching English one (measured in
``docs/text-embeddings.md``: Recall@1 of Chinese queries on a mixed, untranslated catalog
rises from 0.47 to 1.0 when the offset is removed).

The offset is estimated once per encoder from the parallel sentences below (written for
Prism, disjoint from the evaluation benchmark): the difference between the mean Chinese and
the mean English embedding, queries and passages alike. :class:`LanguageNeutral` projects
that direction out of every vector it returns and re-normalises.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from prism.tools.text_encoders import unit_rows

# (English, Chinese) pairs covering the kinds of text Prism embeds: plots, captions,
# transcripts, requests and metadata lines.
CALIBRATION: list[tuple[str, str]] = [
    ("A young woman leaves her village to become a singer in the big city.", "一个年轻女子离开村庄，到大城市去当歌手。"),
    ("Two brothers run a small bakery and argue about their father's recipes.", "两兄弟经营一家小面包店，为父亲的配方争吵不休。"),
    ("A police officer goes undercover inside a criminal gang.", "一名警察卧底潜入犯罪团伙。"),
    ("An old fisherman fights a giant fish far out at sea.", "一位老渔夫在远海与一条大鱼搏斗。"),
    ("Children discover a secret door behind the wardrobe.", "孩子们在衣柜后面发现了一扇秘密的门。"),
    ("A scientist builds a machine that can travel through time.", "一位科学家造出了一台可以穿越时间的机器。"),
    ("A family moves into a haunted house in the countryside.", "一家人搬进了乡下的一座鬼屋。"),
    ("Soldiers cross the desert to deliver an important message.", "士兵们穿越沙漠去送一封重要的信。"),
    ("A robot learns to feel emotions after meeting a lonely boy.", "一个机器人在遇到一个孤独的男孩后学会了感受情绪。"),
    ("A chef opens a food truck and travels across the country.", "一位厨师开了一辆餐车，走遍全国。"),
    ("A quiet film about friendship, loss and second chances.", "一部关于友谊、失去和第二次机会的安静电影。"),
    ("A funny story about a dog who wants to be a movie star.", "一个关于一只想当电影明星的狗的搞笑故事。"),
    ("I want a relaxing movie for a rainy Sunday afternoon.", "我想找一部适合下雨的星期天下午看的轻松电影。"),
    ("Please recommend something exciting with car chases.", "请推荐一部有飞车追逐的刺激电影。"),
    ("I loved that film, but I do not like horror.", "我很喜欢那部电影，但我不喜欢恐怖片。"),
    ("Something for the whole family, nothing too scary.", "适合全家一起看的，不要太吓人。"),
    ("A poster with a red sky, a city skyline and large white letters.", "一张海报，红色的天空、城市的天际线和白色的大字。"),
    ("A photo of a cat sleeping on a wooden table.", "一张猫睡在木桌上的照片。"),
    ("The narrator speaks softly about the history of the river.", "旁白轻声讲述这条河的历史。"),
    ("Genres: comedy, romance. Released in 1995.", "类型：喜剧、爱情。1995年上映。"),
    ("Directed by a famous director, starring two well-known actors.", "由一位著名导演执导，两位知名演员主演。"),
    ("A documentary about whales migrating across the ocean.", "一部关于鲸鱼横渡大洋迁徙的纪录片。"),
    ("A teenager trains hard to win the national chess championship.", "一个少年刻苦训练，想赢得全国象棋冠军。"),
    ("A spy must stop a bomb hidden somewhere in the capital.", "一名间谍必须阻止藏在首都某处的炸弹。"),
]


def language_direction(encoder) -> np.ndarray:
    """The unit vector from the mean English to the mean Chinese embedding of ``encoder``."""
    english = [en for en, _ in CALIBRATION]
    chinese = [zh for _, zh in CALIBRATION]
    zh = np.concatenate([encoder.encode(chinese, "passage"), encoder.encode(chinese, "query")])
    en = np.concatenate([encoder.encode(english, "passage"), encoder.encode(english, "query")])
    direction = zh.mean(axis=0) - en.mean(axis=0)
    return (direction / np.linalg.norm(direction)).astype(np.float32)


def project_out(vectors: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``vectors`` without their component along the unit ``direction``, rows re-normalised."""
    return unit_rows(vectors - np.outer(vectors @ direction, direction))


def cached_direction(encoder, cache_dir: Path) -> np.ndarray:
    """:func:`language_direction`, kept in ``cache_dir`` per encoder and calibration set (it
    costs ~100 encodes, which would otherwise be paid by every process at start-up)."""
    key = hashlib.sha256(repr((encoder.name, encoder.dim, CALIBRATION)).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"language-direction-{key}.npy"
    if path.is_file():
        return np.load(path)
    direction = language_direction(encoder)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, direction)
    partial.replace(path)  # atomic: a concurrent reader never sees half a file
    return direction


class LanguageNeutral:
    """A text encoder whose vectors carry no English/Chinese offset; same dim and contract."""

    def __init__(self, encoder, cache_dir: Path) -> None:
        self.inner = encoder
        self.name = f"{encoder.name}+language-neutral"
        self.dim = encoder.dim
        self.direction = cached_direction(encoder, cache_dir)

    def encode(self, texts: list[str], kind: str = "passage") -> np.ndarray:
        return project_out(self.inner.encode(texts, kind), self.direction)
