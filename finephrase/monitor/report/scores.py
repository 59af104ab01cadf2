"""`finephrase report DIR --scores SCORES_DIR`: the quality scores of a `finephrase score` output: scores.png (per
classifier, each prompt's rephrased rows against their source documents, histograms of the sampled scores) and a
table in report.md (the card's numbers)."""

from __future__ import annotations

from pathlib import Path

from finephrase.scoring.stats import change_text
from finephrase.scoring.stats import score_text as _f

PNG = "scores.png"


def plot_scores(plt, scores: dict, path: Path) -> None:
    prompts = list(scores.get("prompts") or {})
    names = [c["name"] for c in scores.get("classifiers") or []]
    fig, axes = plt.subplots(len(names), max(1, len(prompts)), figsize=(4 * max(1, len(prompts)), 3 * len(names)),
                             squeeze=False)
    for i, name in enumerate(names):
        for j, p in enumerate(prompts):
            ax, s = axes[i][j], (scores["prompts"].get(p) or {}).get(name)
            for key, label, color in (("sources", "source documents", "#999999"), ("rows", "rephrased", "#1f77b4")):
                hist = ((s or {}).get(key) or {}).get("histogram")
                if hist and hist["counts"]:
                    edges = hist["edges"]
                    ax.stairs(hist["counts"], edges, label=f"{label} (mean {_f(s[key]['mean'])})", color=color,
                              fill=key == "sources", alpha=0.6 if key == "sources" else 1.0)
            ax.set_title(f"{p}: score_{name}", fontsize=10)
            ax.set_xlabel("score")
            ax.set_ylabel("rows (sampled)")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def scores_lines(scores: dict) -> list[str]:
    L = ["", "## Quality scores", "", f"From `finephrase score` on `{scores.get('source')}`"
         + ("" if scores.get("with_sources") else " (source documents not scored)") + ".", "",
         "| prompt | classifier | rows | mean (source) | mean (rephrased) | mean change |",
         "|---|---|---:|---:|---:|---:|"]
    for p, per in (scores.get("prompts") or {}).items():
        for name, s in per.items():
            delta = s.get("delta") or {}
            change = change_text(delta["mean"]) if delta.get("n") else "-"
            L.append(f"| `{p}` | `{name}` | {s['rows']['n']:,} | {_f((s.get('sources') or {}).get('mean'))} | "
                     f"{_f(s['rows']['mean'])} | {change} |")
    return L + ["", f"![Quality scores]({PNG})"]
