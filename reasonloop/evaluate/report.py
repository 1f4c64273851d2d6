"""The grid report: `report.md` (a table per task x model) and accuracy-vs-tokens plots.

One PNG per task x model: x = mean completion tokens per problem (log scale), y =
accuracy with its 95% interval (Wilson), one line per strategy (`StrategySpec.line`),
points ordered by tokens. Rendered with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from reasonloop.store.atomic import atomic_write_bytes, atomic_write_text


def plot_accuracy_vs_tokens(cells: list[dict], title: str) -> bytes:
    """PNG bytes of accuracy against tokens per problem, one line per `cell["line"]`."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[str, list[dict]] = defaultdict(list)
    for c in cells:
        lines[c["line"]].append(c)
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    markers, styles = "osD^vPX*<>", ["-", "--", ":", "-."]
    colors = plt.get_cmap("tab20").colors
    for n, (name, points) in enumerate(lines.items()):
        points = sorted(points, key=lambda c: c["tokens_per_problem"])
        x = [c["tokens_per_problem"] for c in points]
        y = [c["accuracy"] for c in points]
        low = [c["accuracy"] - c["accuracy_wilson95"][0] for c in points]
        high = [c["accuracy_wilson95"][1] - c["accuracy"] for c in points]
        # distinct marker + line style per line: lines that coincide stay readable
        ax.errorbar(x, y, yerr=[low, high], marker=markers[n % len(markers)], linestyle=styles[n % len(styles)],
                    color=colors[(2 * n) % 20 if n < 10 else (2 * n + 1) % 20], capsize=3, label=name, alpha=0.85)
    ax.set_xscale("log")
    ax.set_xlabel("completion tokens per problem (mean, log scale)")
    ax.set_ylabel("accuracy (95% Wilson interval)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def report_markdown(cells: list[dict], images: dict[tuple[str, str], str]) -> str:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for c in cells:
        groups[(c["task"], c["model"])].append(c)
    out = ["# Evaluation report", ""]
    for (task, model), rows in groups.items():
        out += [f"## {task} — `{model}`", "", f"![accuracy vs tokens]({images[(task, model)]})", "",
                "| strategy | accuracy | 95% CI (Wilson) | tokens/problem | model calls | scorer calls |",
                "|---|---|---|---|---|---|"]
        for c in sorted(rows, key=lambda c: (c["line"], c["tokens_per_problem"])):
            lo, hi = c["accuracy_wilson95"]
            out.append(f"| {c['label']} | {c['accuracy']:.3f} ± {c['accuracy_ci95']:.3f} | [{lo:.3f}, {hi:.3f}] | "
                       f"{c['tokens_per_problem']:.0f} | {c['model_calls_per_problem']:.1f} | "
                       f"{c['scorer_calls_per_problem']:.1f} |")
        extra = [c for c in rows if any(k.startswith("pass@") for k in c)]
        if extra:
            out += ["", "pass@k (unbiased) and maj@k over the i.i.d. candidates:", ""]
            for c in extra:
                ks = sorted(int(k[5:]) for k in c if k.startswith("pass@") and not k.endswith("_ci95"))
                cells_txt = ", ".join(f"pass@{k} {c[f'pass@{k}']:.3f} / maj@{k} {c[f'maj@{k}']:.3f}" for k in ks)
                out.append(f"- {c['label']}: {cells_txt}")
        out.append("")
    return "\n".join(out)


def write_report(root: str | Path, cells: list[dict]) -> Path:
    """Write `report.md` and `plot_<n>.png` under `root`; returns the report's path."""
    root = Path(root)
    images: dict[tuple[str, str], str] = {}
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for c in cells:
        groups[(c["task"], c["model"])].append(c)
    for n, ((task, model), rows) in enumerate(groups.items()):
        name = f"plot_{n}.png"
        atomic_write_bytes(root / name, plot_accuracy_vs_tokens(rows, f"{task} — {Path(model).name}"))
        images[(task, model)] = name
    path = root / "report.md"
    atomic_write_text(path, report_markdown(cells, images))
    return path
