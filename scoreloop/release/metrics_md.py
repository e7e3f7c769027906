"""Render an evaluation (``evaluation/evaluation.json``) as a markdown table for a PR comment:
``python -m scoreloop.release.metrics_md EVALUATION_JSON`` (ci.yml's retrain-metrics job)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "f1")


def render(evaluation: dict[str, Any]) -> str:
    """One row per model (challenger, champion, baseline), the metrics on the holdout."""
    lines = [
        "### Retrain against main's champion (holdout)",
        "",
        "| model | version | " + " | ".join(METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for role, data in evaluation.get("models", {}).items():
        overall = data.get("overall", {})
        cells = [str(overall.get(m, "-")) for m in METRICS]
        lines.append(f"| {role} | {data.get('version') or '-'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m scoreloop.release.metrics_md EVALUATION_JSON\n")
        return 2
    sys.stdout.write(render(json.loads(Path(argv[0]).read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
