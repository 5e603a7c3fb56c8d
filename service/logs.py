"""Structured logging. Records carry event names, model versions, codes and timings: never feature
values, assessment ids or anything else that could identify a patient."""

from __future__ import annotations

import json
import logging
import sys
import time

_STD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
# Extra keys that may never be logged even if a caller passes them.
_FORBIDDEN = frozenset({"assessment_id", "features", "value", "patient", "body_mass_kg"})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _STD and k not in _FORBIDDEN and not k.startswith("_"):
                out[k] = v if isinstance(v, str | int | float | bool | None) else str(v)
        if record.exc_info:
            out["trace"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"))


def configure(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Python warnings (numpy's RuntimeWarnings on degenerate signals, deprecations) through the
    # same handler: one JSON line each on the "py.warnings" logger instead of raw stderr text.
    logging.captureWarnings(True)
