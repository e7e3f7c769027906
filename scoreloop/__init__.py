"""scoreloop's front doors: the ``scoreloop`` CLI, the demo and the release commands.

They import :mod:`pipelines` (the domain), :mod:`assets` (Dagster) and :mod:`serving` (the lookup
service); nothing imports this package.
"""
