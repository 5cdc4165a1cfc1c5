"""The `fairbench` command: parse, call the Python API, render with rich. No logic of its own.

One module per group of sub-commands; this one only assembles them into the `app` the entry point runs.
"""

from __future__ import annotations

import sys

try:  # Ctrl-C while the command starts (these imports take a while): one line, exit 130, no traceback
    import typer

    from fairbench.cli.assets import assets_app
    from fairbench.cli.board import grid_cmd, leaderboard_cmd, report_cmd
    from fairbench.cli.catalogue import examples_cmd, methods_cmd, tasks_cmd, tasks_table
    from fairbench.cli.common import DEBUG, OneLineErrors
    from fairbench.cli.conditions import conditions_cmd
    from fairbench.cli.curves import curve_cmd
    from fairbench.cli.gain import gain_cmd
    from fairbench.cli.networks import features_app, judge_app
    from fairbench.cli.score import score_cmd
    from fairbench.cli.sweep import sweep_cmd
    from fairbench.cli.train import import_stylegan2_cmd, run_cmd
    from fairbench.cli.vary import vary_cmd
except KeyboardInterrupt:
    sys.stderr.write("interrupted while starting; nothing was written\n")
    raise SystemExit(130) from None

__all__ = ["app", "main", "tasks_table"]

app = typer.Typer(cls=OneLineErrors, no_args_is_help=True, add_completion=False, help="Representational fairness benchmark for image generators.")
app.add_typer(features_app, name="features")
app.add_typer(judge_app, name="judge")
app.add_typer(assets_app, name="assets", help="List, fetch and verify downloadable assets (weights).")


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors.")) -> None:
    DEBUG["on"] = debug


# In the order `fairbench --help` lists them: what is installed, then train, score, compare.
for _name, _command in (
    ("tasks", tasks_cmd), ("methods", methods_cmd), ("examples", examples_cmd), ("run", run_cmd), ("import-stylegan2", import_stylegan2_cmd),
    ("score", score_cmd), ("leaderboard", leaderboard_cmd), ("sweep", sweep_cmd), ("curve", curve_cmd),
    ("gain", gain_cmd), ("conditions", conditions_cmd), ("vary", vary_cmd), ("report", report_cmd), ("grid", grid_cmd),
):
    app.command(_name)(_command)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # between the imports and a command (parsing the arguments)
        from fairbench.cli.common import EXIT_INTERRUPTED, print_interrupted

        print_interrupted()
        sys.exit(EXIT_INTERRUPTED)

