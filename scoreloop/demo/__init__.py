"""``scoreloop demo``: the loop on the bundled data, step by step, through Dagster.

The demo is a list of steps (:data:`STEPS`), each a function of a shared :class:`DemoContext`
that may return a summary block; add a step by appending to the list:

1. simulate: the bundled data as monthly batch + label files (with a few faults, and ``drift``
   from the first live batch on); all but the newest 8 land now;
2. ingest: validate every batch through Dagster;
3. champion: train the first champion on the first period (``split.until`` = its last batch),
   evaluate, gate, promote (the ``retraining`` assets);
4. score: score every accepted batch with it and publish the serving snapshot
   (``serving_snapshot``);
5. challenger: retrain on the newest labelled batches, judge it against the champion on the same
   out-of-time holdout; if promoted, the rescore-on-promotion sensor's run publishes a snapshot of
   the new champion (skipped when no labelled batch is newer than the champion);
6. monitor: drift and realised performance of the newest batches, the staleness verdict;
7. live: the held-back batches land one by one, are ingested, scored and monitored, and the real
   ``staleness_sensor`` is ticked on the instance; its retraining run goes through the gate, a
   promotion is rescored and the snapshot swaps;
8. serve: start ``scoreloop serve`` on a free port
   (:class:`scoreloop.serve_process.ServiceProcess`), one lookup and one on-demand prediction.

Where things are: the steps in :mod:`scoreloop.demo.steps`, what they print in
:mod:`scoreloop.demo.render`, the state root (``--fresh``, the Dagster instance folder) in
:mod:`scoreloop.demo.state`, the loop over the steps in :mod:`scoreloop.demo.run`. The Dagster
part lives in ``assets.runner``.

Everything is written under ``settings.state_root`` (the persistent Dagster instance at
``settings.dagster``), never into the checkout. ``--fresh`` (the default) wipes the state root
first (only after checking it holds nothing but scoreloop state).
"""

from scoreloop.demo.run import run_demo
from scoreloop.demo.state import STATE_MARKER, ensure_dagster_home, reset_state_root
from scoreloop.demo.steps import STEPS, DemoContext, DemoStep

__all__ = [
    "STATE_MARKER",
    "STEPS",
    "DemoContext",
    "DemoStep",
    "ensure_dagster_home",
    "reset_state_root",
    "run_demo",
]
