"""The Celery app a worker process loads: ``celery -A assets.celery_worker worker``.

Its broker (Redis) is ``SCORELOOP_CELERY_BROKER``; its one task runs a partition's Dagster run
(:func:`assets.distributed.celery_app`). Started locally by
:func:`assets.distributed.celery_workers`, or on other machines against the same broker.
"""

from __future__ import annotations

import os

from assets.distributed import celery_app

app = celery_app(os.environ.get("SCORELOOP_CELERY_BROKER", "redis://127.0.0.1:6379/0"))
