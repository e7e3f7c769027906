"""The ``scoreloop`` command line: one module per command group, each calling the same
``pipelines`` functions that Dagster and DVC call.

| group | module |
|---|---|
| ``dataset infer``, ``simulate``, ``ingest`` | :mod:`scoreloop.cli.data` |
| ``training-set``, ``train``, ``evaluate``, ``gate``, ``model``, ``stage`` |
  :mod:`scoreloop.cli.model` |
| ``score``, ``rescore`` | :mod:`scoreloop.cli.scoring` |
| ``monitor`` | :mod:`scoreloop.cli.monitor` |
| ``explain`` | :mod:`scoreloop.cli.explain` |
| ``serve`` | :mod:`scoreloop.cli.serve` |
| ``maintain`` | :mod:`scoreloop.cli.maintain` |
| ``demo``, ``ui`` | :mod:`scoreloop.cli.demo` |
| ``release`` (the deploy steps) | :mod:`scoreloop.cli.release` |
"""

from __future__ import annotations

import typer

from scoreloop.cli import data, model
from scoreloop.cli.demo import demo_command, ui_command
from scoreloop.cli.explain import explain_command
from scoreloop.cli.maintain import maintain_command
from scoreloop.cli.monitor import monitor_command
from scoreloop.cli.release import release_app
from scoreloop.cli.scoring import rescore_command, score_command
from scoreloop.cli.serve import serve_command

app = typer.Typer(
    help="scoreloop: batch scoring and retraining for tabular CatBoost models.",
    no_args_is_help=True,
)
data.register_commands(app)
app.command("score")(score_command)
app.command("rescore")(rescore_command)
app.command("serve")(serve_command)
app.command("demo")(demo_command)
app.command("ui")(ui_command)
app.command("monitor")(monitor_command)
app.command("explain")(explain_command)
app.command("maintain")(maintain_command)
model.register_commands(app)
app.add_typer(release_app, name="release")


def main() -> None:  # pragma: no cover - console entry point
    app()
