"""Export a split and item features in MMRec's format, so peers run on exactly our data.

MMRec reads ``<name>.inter`` (tab-separated ``userID itemID rating timestamp x_label`` with
``x_label`` 0 = train, 1 = validation, 2 = test) and ``image_feat.npy`` / ``text_feat.npy``
(float32, one row per item index). Ids are our dense indices, so feature rows line up.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from prism.ranking.interactions import Interactions
from prism.ranking.splits import Split


def write_mmrec(split: Split, out_dir: Path, name: str, text_feat: np.ndarray | None,
                 image_feat: np.ndarray | None) -> dict[str, str]:
    """Write ``{name}.inter``, feature files and an id map; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inter = out_dir / f"{name}.inter"
    with open(inter, "w", encoding="utf-8") as handle:
        handle.write("userID\titemID\trating\ttimestamp\tx_label\n")
        for label, part in ((0, split.train), (1, split.val), (2, split.test)):
            _write_rows(handle, part, label)
    written = {"inter": str(inter)}
    for key, feat in (("text_feat", text_feat), ("image_feat", image_feat)):
        if feat is not None:
            path = out_dir / f"{key}.npy"
            np.save(path, np.asarray(feat, dtype=np.float32))
            written[key] = str(path)
    id_map = out_dir / "id_map.json"
    id_map.write_text(json.dumps({"user_ids": split.train.user_ids, "item_ids": split.train.item_ids}))
    written["id_map"] = str(id_map)
    return written


def _write_rows(handle, part: Interactions, label: int) -> None:
    for u, i, r, t in zip(part.users.tolist(), part.items.tolist(), part.ratings.tolist(), part.times.tolist()):
        handle.write(f"{u}\t{i}\t{r:g}\t{t}\t{label}\n")
