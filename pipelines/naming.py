"""The model's name in the registry, from a spec's two names (no polars: the CLI reads it fast)."""

from __future__ import annotations


def registered_name(model_name: str | None, dataset_name: str) -> str:
    """The spec's ``model_name``, else the dataset's name."""
    return model_name or dataset_name
