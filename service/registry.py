"""Model store: versions on disk, verified loads, warm-up, atomic swap.

Layout: `<models_dir>/<name>/<version>/` (DESIGN 2). Loading goes through OnnxModel.load, which
verifies sha256, manifest-vs-catalog and golden outputs (the warm-up). Only a fully verified model is
ever published, by replacing one immutable snapshot reference: readers take the snapshot once per
request and never see a half-swapped state. A bad artifact is refused with a log line; whatever was
serving keeps serving.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from service.errors import ModelArtifactError, ModelNotFoundError, ModelNotReadyError
from service.model import OnnxModel

log = logging.getLogger("service.registry")

_PART = re.compile(r"(\d+)|(\D+)")


def version_key(version: str) -> tuple[tuple[int, str], ...]:
    """Numeric-aware ordering: 1.10.0 > 1.9.0; text parts sort after numbers at the same place."""
    return tuple((int(num), "") if num else (1 << 62, txt) for num, txt in _PART.findall(version))


@dataclass(frozen=True, slots=True)
class Snapshot:
    current: OnnxModel | None
    loaded: dict[str, OnnxModel] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RefreshResult:
    current_version: str | None
    loaded: tuple[str, ...]
    refused: tuple[tuple[str, str], ...]
    changed: bool


class ModelRegistry:
    def __init__(
        self,
        models_dir: Path,
        name: str,
        *,
        pinned_version: str = "",
        max_loaded: int = 3,
        loader: Callable[[Path], OnnxModel] = OnnxModel.load,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.name = name
        self.pinned_version = pinned_version
        self.max_loaded = max_loaded
        self._loader = loader
        self._snapshot = Snapshot(None)
        self._lock = threading.Lock()  # serialises loads/swaps; readers never take it
        # (version, fingerprint of the files) -> error, so a bad artifact is logged once, not every poll.
        self._refused: dict[tuple[str, tuple[float, ...]], str] = {}
        self._listeners: list[Callable[[OnnxModel], None]] = []
        self._refused_listeners: list[Callable[[str, str], None]] = []

    # -- readers (hot path) ---------------------------------------------------------------------
    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def ready(self) -> bool:
        return self._snapshot.current is not None

    def get(self, version: str = "") -> OnnxModel:
        snap = self._snapshot
        if not version:
            if snap.current is None:
                raise ModelNotReadyError("no model is loaded yet")
            return snap.current
        model = snap.loaded.get(version)
        if model is None:
            available = ", ".join(sorted(snap.loaded, key=version_key)) or "none"
            raise ModelNotFoundError(f"model version {version!r} is not loaded (loaded: {available})")
        return model

    def on_change(self, listener: Callable[[OnnxModel], None]) -> None:
        self._listeners.append(listener)

    def on_refused(self, listener: Callable[[str, str], None]) -> None:
        """Called with (version, reason) once per refused artifact state (not on every poll)."""
        self._refused_listeners.append(listener)

    # -- writers --------------------------------------------------------------------------------
    def versions_on_disk(self) -> list[str]:
        root = self.models_dir / self.name
        if not root.is_dir():
            return []
        return sorted((p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=version_key)

    def refresh(self) -> RefreshResult:
        """Load versions that appeared, publish the newest valid one (or the pinned one)."""
        with self._lock:
            snap = self._snapshot
            loaded = dict(snap.loaded)
            refused: list[tuple[str, str]] = []
            on_disk = self.versions_on_disk()
            wanted = [self.pinned_version] if self.pinned_version else on_disk[::-1][: self.max_loaded]
            for version in wanted:
                if version in loaded and not self._changed_on_disk(loaded[version]):
                    continue
                err = self._try_load(version, loaded)
                if err is not None:
                    refused.append((version, err))
            # Versions that vanished from disk stay loaded only while they are current: a request
            # pinned to them keeps working until the next swap.
            candidates = [v for v in ((self.pinned_version and [self.pinned_version]) or on_disk[::-1]) if v in loaded]
            current = loaded[candidates[0]] if candidates else snap.current
            if current is not None:
                loaded[current.version] = current
            keep = sorted(loaded, key=version_key)[-self.max_loaded :]
            if current is not None and current.version not in keep:
                keep.append(current.version)
            loaded = {v: loaded[v] for v in keep}
            changed = current is not snap.current or loaded.keys() != snap.loaded.keys() or any(
                loaded[v] is not snap.loaded.get(v) for v in loaded
            )
            if changed:
                self._snapshot = Snapshot(current, loaded)
        if changed and current is not None and current is not snap.current:
            log.info("model swapped", extra={"model_name": current.name, "model_version": current.version})
            for listener in self._listeners:
                listener(current)
        return RefreshResult(
            current.version if current else None, tuple(sorted(loaded, key=version_key)), tuple(refused), changed
        )

    def activate(self, version: str) -> OnnxModel:
        """Admin: load (if needed) and publish one specific version."""
        with self._lock:
            snap = self._snapshot
            loaded = dict(snap.loaded)
            if version not in loaded or self._changed_on_disk(loaded[version]):
                err = self._try_load(version, loaded, remember=False)
                if err is not None:
                    raise ModelArtifactError(err)
            model = loaded[version]
            self.pinned_version = version
            self._snapshot = Snapshot(model, loaded)
        log.info("model activated", extra={"model_name": model.name, "model_version": model.version})
        for listener in self._listeners:
            listener(model)
        return model

    def _fingerprint(self, version: str) -> tuple[float, ...]:
        d = self.models_dir / self.name / version
        out: list[float] = []
        for fname in ("manifest.json", "model.onnx"):
            try:
                st = (d / fname).stat()
                out += [st.st_mtime_ns, st.st_size]
            except OSError:
                out += [-1.0, -1.0]
        return tuple(out)

    def _changed_on_disk(self, model: OnnxModel) -> bool:
        # A loaded version whose files changed is re-verified (and refused if now corrupt).
        return model.fingerprint is not None and model.fingerprint != self._fingerprint(model.version)

    def _try_load(self, version: str, loaded: dict[str, OnnxModel], *, remember: bool = True) -> str | None:
        fp = self._fingerprint(version)
        key = (version, fp)
        if remember and key in self._refused:
            return self._refused[key]
        directory = self.models_dir / self.name / version
        try:
            model = self._loader(directory)
            if model.version != version or model.name != self.name:
                raise ModelArtifactError(
                    f"{directory}: manifest names {model.name} {model.version}, directory says {self.name} {version}"
                )
        except ModelArtifactError as exc:
            msg = str(exc)
            log.error(
                "model artifact refused; the current model keeps serving",
                extra={"model_name": self.name, "model_version": version, "error": msg},
            )
            self._remember_refusal(key, version, msg, remember)
            return msg
        except Exception as exc:  # an unexpected loader failure must never take serving down
            msg = f"{directory}: unexpected error while loading: {exc!r}"
            log.exception(
                "model artifact refused; the current model keeps serving",
                extra={"model_name": self.name, "model_version": version},
            )
            self._remember_refusal(key, version, msg, remember)
            return msg
        model.fingerprint = fp
        loaded[version] = model
        return None

    def _remember_refusal(self, key: tuple[str, tuple[float, ...]], version: str, msg: str, remember: bool) -> None:
        if remember:
            # Bounded: a directory rewritten in a loop must not grow this forever.
            while len(self._refused) >= 256:
                del self._refused[next(iter(self._refused))]
            self._refused[key] = msg
        for listener in self._refused_listeners:
            listener(version, msg)
