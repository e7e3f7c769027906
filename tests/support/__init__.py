"""Test helpers shared across test packages: build tables, bundles, snapshots, servers."""
