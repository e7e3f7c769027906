"""scoreloop's front doors: the release steps CI/CD calls (and, later, the CLI)."""
