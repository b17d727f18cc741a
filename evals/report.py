"""Write an evaluation run as ``results.json``, ``report.md`` and PNG plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TABLE_METRICS = ["recall@10", "recall@20", "ndcg@10", "ndcg@20", "hr@10", "mrr@10", "precision@10",
                 "coverage@20", "novelty@20", "ild@20", "satisfaction@20"]
CURVE_METRICS = ["recall", "ndcg"]


def _fmt(value: float, std: float | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return text + (f" ±{std:.4f}" if std else "")


def markdown(results: dict) -> str:
    """The run as Markdown: one table per protocol, significance, robustness, cross-modal."""
    lines = [f"# Evaluation suite `{results['suite']['name']}`", "",
             f"Wall time {results['wall_seconds']:.0f} s; seeds {results['suite']['seeds']}; "
             f"catalog {results['data']['catalog_items']} items ({results['data']['items_with_text']} with text vectors, "
             f"{results['data']['items_with_image']} with poster features). ± is the std over seeds.", ""]
    for protocol, block in results["protocols"].items():
        split = block["split"]
        lines += [f"## {protocol}", "",
                  f"train {split['train']}, validation {split['val']}, test {split['test']} interactions; "
                  f"{split['test_users']} test users.", "",
                  "| model | " + " | ".join(TABLE_METRICS) + " | fit s | ms/user | params |",
                  "|---" * (len(TABLE_METRICS) + 4) + "|"]
        ranked = sorted(block["models"].items(), key=lambda kv: -kv[1]["mean"]["ndcg@20"])
        for name, entry in ranked:
            cells = [_fmt(entry["mean"].get(m), entry["std"].get(m)) for m in TABLE_METRICS]
            eff = entry["efficiency"]
            lines.append(f"| {name} | " + " | ".join(cells) +
                         f" | {eff['fit_seconds']:.1f} | {eff['inference_ms_per_user']:.3f} | {eff['parameters']} |")
        sig = block["significance"]
        if sig["vs"]:
            lines += ["", f"Paired bootstrap over users, best model **{block['best']}** minus each other model "
                          f"on {sig['metric']} (95% interval, two-sided p):", ""]
            for other, s in sorted(sig["vs"].items(), key=lambda kv: kv[1]["diff"]):
                lines.append(f"- vs {other}: {s['diff']:+.4f} [{s['ci_low']:+.4f}, {s['ci_high']:+.4f}], p = {s['p_value']:.3f}")
        lines.append("")
    if "robustness" in results:
        lines += ["## Robustness (content model, leave-last-one, all ratings)", "",
                  "| variant | ndcg@20 | recall@20 | Δ ndcg@20 |", "|---|---|---|---|"]
        for label, r in results["robustness"].items():
            lines.append(f"| {label} | {r['ndcg@20']:.4f} | {r['recall@20']:.4f} | {r['delta_ndcg@20']:+.4f} |")
        lines.append("")
    if "cross_modal" in results:
        lines += ["## Cross-modal retrieval (held-out items)", "",
                  "| space | direction | R@1 | R@5 | R@10 | MRR | chance@10 | n |", "|---|---|---|---|---|---|---|---|"]
        for space, directions in results["cross_modal"].items():
            for direction, r in directions.items():
                lines.append(f"| {space} | {direction} | {r['recall@1']:.4f} | {r['recall@5']:.4f} | "
                             f"{r['recall@10']:.4f} | {r['mrr']:.4f} | {r['chance@10']:.4f} | {int(r['n'])} |")
        lines.append("")
    return "\n".join(lines)


def plot_curves(results: dict, path: Path) -> None:
    """Recall@K and NDCG@K against K for every model, one row per protocol."""
    protocols = list(results["protocols"].items())
    fig, axes = plt.subplots(len(protocols), 2, figsize=(11, 3.6 * len(protocols)), squeeze=False)
    for row, (protocol, block) in enumerate(protocols):
        for col, metric in enumerate(CURVE_METRICS):
            ax = axes[row][col]
            for name, entry in block["models"].items():
                ks = sorted(int(k.split("@")[1]) for k in entry["mean"] if k.startswith(metric + "@"))
                ax.plot(ks, [entry["mean"][f"{metric}@{k}"] for k in ks], marker="o", label=name)
            ax.set_title(f"{protocol}: {metric}@K", fontsize=9)
            ax.set_xlabel("K")
            ax.grid(alpha=0.3)
    axes[0][1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_robustness(results: dict, path: Path) -> None:
    labels = list(results["robustness"])
    values = [results["robustness"][label]["ndcg@20"] for label in labels]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(labels, values, color="#4a7fb5")
    ax.set_xlabel("NDCG@20")
    ax.set_title("Modality ablation (content model)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cold_vs_warm(results: dict, path: Path) -> None:
    """NDCG@20 of every model on the warm (leave-last-one) and cold-start protocols."""
    warm = next((b for p, b in results["protocols"].items() if p.startswith("leave_last_one")), None)
    cold = next((b for p, b in results["protocols"].items() if p.startswith("cold_items")), None)
    if warm is None or cold is None:
        return
    names = [n for n in warm["models"] if n in cold["models"]]
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(9, 3.8))
    ax.bar([i - 0.2 for i in x], [warm["models"][n]["mean"]["ndcg@20"] for n in names], 0.4, label="warm")
    ax.bar([i + 0.2 for i in x], [cold["models"][n]["mean"]["ndcg@20"] for n in names], 0.4, label="cold items")
    ax.set_xticks(list(x), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("NDCG@20")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(results: dict, out_dir: Path) -> dict[str, Path]:
    """Write every artefact of the run into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "markdown": out_dir / "report.md",
             "curves": out_dir / "metric_at_k.png", "robustness": out_dir / "ablation.png",
             "cold_vs_warm": out_dir / "cold_vs_warm.png"}
    paths["json"].write_text(json.dumps(results, indent=2, default=float))
    paths["markdown"].write_text(markdown(results))
    plot_curves(results, paths["curves"])
    if "robustness" in results:
        plot_robustness(results, paths["robustness"])
    plot_cold_vs_warm(results, paths["cold_vs_warm"])
    return {k: p for k, p in paths.items() if p.exists()}
