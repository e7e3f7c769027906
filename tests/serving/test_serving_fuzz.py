"""Schemathesis fuzz of the OpenAPI schema: generated requests never get a 5xx.

Each operation of the live schema (loaded from the app, snapshot in place) gets a bounded number
of generated cases, positive and negative, sent in process through the ASGI transport.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from starlette.testclient import TestClient
from support.serving import TOKEN

from serving.config import ServingSettings
from serving.main import create_app

MAX_EXAMPLES = 25


def _fuzz(
    operation: schemathesis.APIOperation,
    mode: schemathesis.GenerationMode,
    seen: dict[str, set[int]],
) -> None:
    label = operation.label

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
        seen.setdefault(label, set()).add(response.status_code)
        assert response.status_code < 500, (label, case.path, response.text[:300])

    try:
        check()
    except Unsatisfiable:
        # An operation without parameters or body has no invalid input to generate.
        if mode is schemathesis.GenerationMode.POSITIVE or list(operation.iter_parameters()):
            raise


def test_no_server_errors_on_generated_requests(serving_settings: ServingSettings) -> None:
    app = create_app(serving_settings)
    with TestClient(app):  # runs the lifespan: the snapshot is loaded
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 9
        seen: dict[str, set[int]] = {}
        for operation in operations:
            for mode in schemathesis.GenerationMode:
                _fuzz(operation, mode, seen)
        assert set(seen) == {op.label for op in operations}
        assert 422 in seen["GET /scores/{entity_id}"]  # negative cases reached validation
        assert 422 in seen["POST /scores/lookup"]
