"""``python -m serving``: run the lookup service without the CLI (the image's entry point).

The options mirror ``scoreloop serve``; only the standard library parses them, so the serving
image needs neither typer nor dagster.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from serving.config import ConfigError
from serving.main import run


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m serving``."""
    parser = argparse.ArgumentParser(
        prog="python -m serving",
        description="Serve score lookups and on-demand scoring from the current serving snapshot.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port")
    parser.add_argument(
        "--dev", action="store_true", help="allow a missing admin token (SCORELOOP_DEV_MODE=1)"
    )
    parser.add_argument(
        "--reload-interval",
        type=float,
        default=None,
        help="seconds between CURRENT polls (default SCORELOOP_RELOAD_INTERVAL_S)",
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning, error")
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and serve until stopped; 2 on a configuration error."""
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        sys.stderr.write(f"error: --port must be 0..65535, not {args.port}\n")
        return 2
    try:
        run(
            host=args.host,
            port=args.port,
            dev_mode=True if args.dev else None,
            reload_interval_s=args.reload_interval,
            log_level=args.log_level,
            server="granian" if args.server == "granian" else "uvicorn",
        )
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
