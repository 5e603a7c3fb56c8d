"""python -m service: Settings (env ALIGN_*, overridden by flags) -> serve.

Every setting is also a flag: ALIGN_MODELS_DIR=... is --models-dir ..., booleans take true/false.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from service.logs import configure
from service.settings import Settings


def parse_args(argv: Sequence[str] | None) -> dict[str, str]:
    parser = argparse.ArgumentParser(prog="python -m service", description="Prosthetic alignment recommendation service (gRPC).")
    for name, info in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, dest=name, default=None, metavar=name.upper(), help=f"{info.description or name} (env ALIGN_{name.upper()})")
    ns = parser.parse_args(argv)
    return {k: v for k, v in vars(ns).items() if v is not None}


def main(argv: Sequence[str] | None = None) -> int:
    overrides = parse_args(argv)
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]  # pydantic converts the strings
    except ValidationError as exc:
        # One line, like every other start-up failure (exit 2).
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
        print(f"invalid settings: {problems}", file=sys.stderr)
        return 2
    configure(settings.log_level, settings.log_format)
    from service.api.server import serve  # imported late: settings errors should not need grpc

    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
