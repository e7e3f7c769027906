"""Release steps for the lookup service, one module per step, each a plain function.

``build.build_image`` -> ``smoke.smoke_test`` -> ``rollout.rollout`` -> ``verify.verify``, and
``rollback.rollback`` to put the previous colour back. They run containers through podman (or
docker, ``SCORELOOP_CONTAINER_ENGINE``) on this host, blue/green behind an haproxy front on
127.0.0.1 (``front``); which colour is live is kept in ``<deploy dir>/state.json`` (``state``).
Every step returns a dataclass and raises :class:`ReleaseError` saying what failed and how to fix
it. Nothing runs at import time. See docs/deploy.md.
"""

from scoreloop.release.errors import ReleaseError

__all__ = ["ReleaseError"]
