"""Hybrid vs LightGCN from one.py's JSON files: per protocol, each seed, the mean over seeds,
and a paired bootstrap over (user, seed) pairs (evals/significance.py). Usage: compare.py DIR..."""
import json
import sys
from pathlib import Path

import numpy as np

from prism.evals.significance import paired_bootstrap

runs = {}
for folder in sys.argv[1:]:
    for path in sorted(Path(folder).glob("*.json")):
        r = json.loads(path.read_text())
        runs[(r["model"].split("-")[0], r["protocol"], r["variant"], r["seed"])] = r
out = {}
for (model, protocol, variant, seed), r in sorted(runs.items()):
    print(f"{model:12s} {protocol:15s} {variant:3s} seed {seed}: ndcg@20 {r['aggregates']['ndcg@20']:.4f} "
          f"recall@20 {r['aggregates']['recall@20']:.4f} fit {r['fit_seconds']:.1f} s ({r['device']})")
for protocol, variant in sorted({(p, v) for _, p, v, _ in runs}):
    for model in ("Prism", "LightGCN"):
        seeds = [runs[k] for k in runs if k[0] == model and k[1:3] == (protocol, variant)]
        if seeds:
            means = {m: float(np.mean([s["aggregates"][m] for s in seeds])) for m in ("ndcg@20", "recall@20")}
            fit = float(np.mean([s["fit_seconds"] for s in seeds]))
            out[f"{model} {protocol} {variant}"] = {**means, "seeds": len(seeds), "fit_seconds": fit}
            print(f"{model} {protocol} {variant}: mean of {len(seeds)} seeds {means} fit {fit:.1f} s")
    pairs = [(runs[("Prism", protocol, variant, s)], runs[("LightGCN", protocol, variant, s)])
             for s in range(3) if ("Prism", protocol, variant, s) in runs and ("LightGCN", protocol, variant, s) in runs]
    if pairs:
        for metric in ("ndcg@20", "recall@20"):
            a, b = [], []
            for h, l in pairs:
                assert h["users"] == l["users"], "the two models must be scored on the same users"
                a += h[metric]
                b += l[metric]
            test = paired_bootstrap(np.array(a), np.array(b))
            out[f"bootstrap {protocol} {variant} {metric}"] = {**test, "seeds": len(pairs)}
            print(f"bootstrap {protocol} {variant} {metric} over {len(pairs)} seeds: {test}")
print(json.dumps(out, indent=1))
