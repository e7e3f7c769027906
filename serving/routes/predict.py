"""On-demand scoring of a posted record."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, status
from fastapi.responses import JSONResponse

from pipelines.spec import DatasetSpec
from serving.deps import MetricsDep, SnapshotDep
from serving.predict import RecordError, predict_record
from serving.routes.guards import StrictJSONRoute
from serving.schemas import ErrorOut, PredictErrorOut, PredictOut

RESPONSES: dict[int | str, dict[str, Any]] = {
    status.HTTP_422_UNPROCESSABLE_CONTENT: {
        "model": PredictErrorOut,
        "description": "The record breaks the dataset spec (each field and rule named)",
    },
    status.HTTP_503_SERVICE_UNAVAILABLE: {"model": ErrorOut, "description": "No snapshot"},
}


def example_record(spec: DatasetSpec) -> dict[str, Any]:
    """A valid record for the docs: first allowed category, or the middle of the range."""
    example: dict[str, Any] = {}
    for column in spec.features:
        if column.allowed:
            example[column.name] = column.allowed[len(column.allowed) // 2]
        elif column.dtype in {"int", "float"}:
            low, high = column.min or 0.0, column.max if column.max is not None else 1.0
            middle = (low + high) / 2
            example[column.name] = int(middle) if column.dtype == "int" else middle
        elif column.dtype == "bool":
            example[column.name] = False
        else:
            example[column.name] = "a"
    return example


def build_router(spec: DatasetSpec) -> APIRouter:
    """The /predict router, its example taken from the dataset spec."""
    router = APIRouter(tags=["predict"], route_class=StrictJSONRoute)
    example = example_record(spec)

    @router.post("/predict", response_model=PredictOut, responses=RESPONSES)
    def predict(
        snapshot: SnapshotDep,
        metrics: MetricsDep,
        record: dict[str, Any] = Body(
            description="One record: the spec's feature columns (id and event time optional).",
            examples=[example],
        ),
    ) -> Any:
        """Score one record now with the served model (same features and reasons as batches)."""
        try:
            answer = predict_record(snapshot, record)
        except RecordError as exc:
            spec_name = snapshot.loaded.spec.name
            return JSONResponse(
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                content={
                    "detail": f"record does not match dataset spec {spec_name!r}: {exc}",
                    "errors": [
                        {"field": p.field, "rule": p.rule, "value": p.value} for p in exc.problems
                    ],
                },
            )
        metrics.observe_answer("predict", float(answer["score"]), bool(answer["decision"]))
        return answer

    return router
