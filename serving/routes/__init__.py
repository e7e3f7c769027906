"""Routers of the lookup service, one module per concern."""
