"""The artifact store: every model and table keyed by a hash of its full configuration.

A key is the SHA-256 of the canonical JSON of a *spec*: everything that decides the artifact,
including the key of what it was derived from (an unlearned model's spec holds its Original's
key), so changing any upstream setting changes every downstream key. Writes are atomic (temp
file + rename), checkpoints load with ``weights_only=True``, every artifact carries a SHA-256 of
its content (tables in a sidecar, tensor payloads inside themselves), so a corrupt file is
detected, reported and recomputed, and ``force=True`` recomputes each artifact once per process.
A store named by ``$ILLUSION_SEALED_STORE`` computes nothing: what it lacks is an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pandas as pd
import torch

from .config import to_jsonable
from .paths import cache_dir


# Where every computed artifact's wall time is appended (benchmarks/book_profile.py sets it):
# one CSV row per compute, inclusive of and net of the artifacts it computed on the way.
STAGE_LOG = "ILLUSION_STAGE_LOG"
_open_stages: list[float] = []  # time already charged to children, one entry per open stage


def stage_name(kind: str, spec: Mapping[str, Any]) -> str:
    """A short, readable name of an artifact: ``unlearn rl cmf 6``, ``evaluate <key>``."""
    parts = [str(spec.get("kind", kind))]
    for field in ("method", "variant", "forget_set"):
        if spec.get(field) is not None:
            parts.append(str(getattr(spec[field], "name", spec[field])))
    return " ".join(parts)


def _timed(kind: str, spec: Mapping[str, Any], compute: Callable[[], Any]) -> Any:
    log = os.environ.get(STAGE_LOG)
    if not log:
        return compute()
    import time
    _open_stages.append(0.0)
    start = time.perf_counter()
    try:
        return compute()
    finally:
        total = time.perf_counter() - start
        children = _open_stages.pop()
        if _open_stages:
            _open_stages[-1] += total
        row = f"{kind},{stage_name(kind, spec)},{spec_key(spec)},{total:.3f},{total - children:.3f}\n"
        with open(log, "a") as f:
            f.write(row)


# A store the chapters must only read (``make book`` and ``make test`` set it to the store that
# ``illusion run`` has just filled): a missing or corrupt artifact there is an error, not a
# computation. The chapters asking for something the plan did not make is the drift of
# ``illusion.plan.requests`` from the chapters, which would otherwise cost silent minutes.
SEALED = "ILLUSION_SEALED_STORE"


class SealedStoreMiss(RuntimeError):
    """An artifact asked of the sealed store (:data:`SEALED`) that it does not hold intact."""


def sealed_root() -> Path | None:
    value = os.environ.get(SEALED)
    return Path(value).resolve() if value else None


@contextlib.contextmanager
def sealed(root: str | os.PathLike) -> Iterator[None]:
    """Within the block, the store at ``root`` is sealed (:data:`SEALED`), for this process
    and every process it starts; afterwards, as it was."""
    before = os.environ.get(SEALED)
    os.environ[SEALED] = str(Path(root).resolve())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SEALED, None)
        else:
            os.environ[SEALED] = before


# Bumped when the same configuration computes other numbers, so that a store filled by the
# code of before never answers for the code of after (2: models train channels-last on CPU,
# the L-BFGS probe's gradient is written out).
NUMERICS = 2


def spec_key(spec: Mapping[str, Any]) -> str:
    canonical = json.dumps(to_jsonable({"spec": spec, "numerics": NUMERICS}), sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _umask() -> int:
    """The process's umask. Linux shows it in /proc; elsewhere reading it means setting it and
    back, which is done once, at import, before any thread of ours creates files."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# What open() would give a new file: mkstemp's files are 0600, unreadable to a group sharing
# the store.
FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(data: bytes, path: str | Path) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


def atomic_write_text(text: str, path: str | Path) -> None:
    atomic_write_bytes(text.encode(), path)


class CorruptArtifact(RuntimeError):
    pass


def payload_digest(payload: Mapping[str, Any]) -> str:
    """SHA-256 of a payload's content: every tensor's dtype, shape and bytes and every plain
    value, in a canonical order, so it does not depend on how ``torch.save`` laid them out."""
    digest = hashlib.sha256()

    def feed(obj: Any) -> None:
        if torch.is_tensor(obj):
            t = obj.detach().cpu().contiguous()
            digest.update(f"tensor {t.dtype} {tuple(t.shape)}:".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(obj, Mapping):
            for key in sorted(obj, key=str):
                digest.update(f"{key!r}:".encode())
                feed(obj[key])
        elif isinstance(obj, (list, tuple)):
            digest.update(f"[{len(obj)}]".encode())
            for item in obj:
                feed(item)
        else:
            digest.update(f"{obj!r};".encode())

    feed(payload)
    return digest.hexdigest()


class Store:
    """Get-or-compute for tensors payloads (``load_or_compute``) and tables (``table``)."""

    def __init__(self, root: str | Path | None = None, force: bool = False):
        self.root = Path(root) if root is not None else cache_dir()
        self.force = force
        self._fresh: set[str] = set()  # keys computed in this process (force recomputes once)

    def path(self, kind: str, spec: Mapping[str, Any], suffix: str) -> Path:
        return self.root / kind / f"{spec_key(spec)}{suffix}"

    def _reuse(self, path: Path) -> bool:
        return path.is_file() and (not self.force or path.name in self._fresh)

    def _refuse_if_sealed(self, kind: str, spec: Mapping[str, Any], corrupt: str = "") -> None:
        """Raise SealedStoreMiss when this store is sealed: it would compute ``spec`` now
        (missing, or ``corrupt`` says why the stored one is unreadable)."""
        sealed_store = sealed_root()
        if sealed_store is None or self.root.resolve() != sealed_store:
            return
        what = f"{stage_name(kind, spec)} (key {spec_key(spec)})"
        where = f"the store {self.root}, which {SEALED} marks as read-only"
        if corrupt:
            raise SealedStoreMiss(f"{what} is corrupt in {where} ({corrupt}); run `illusion "
                                  f"run` again to recompute it")
        raise SealedStoreMiss(f"{what} is not in {where}: the chapters asked for an artifact "
                              f"that `illusion run` did not compute, so illusion.plan.requests "
                              f"no longer plans what the chapters read (add it there)")

    def load_or_compute(self, kind: str, spec: Mapping[str, Any],
                        compute: Callable[[], dict]) -> dict:
        """A dict of tensors and plain values, from disk when present and intact (its stored
        ``_sha256`` matches its content), else computed and saved."""
        path = self.path(kind, spec, ".pt")
        key = spec_key(spec)
        if self._reuse(path):
            try:
                payload = torch.load(path, map_location="cpu", weights_only=True)
                if not isinstance(payload, dict) or payload.get("_key") != key:
                    raise CorruptArtifact("key mismatch")
                # Damaged bytes inside a tensor still load (as other numbers, NaN say).
                if payload.pop("_sha256", None) != payload_digest(payload):
                    raise CorruptArtifact("checksum mismatch")
                return payload
            except Exception as error:
                self._refuse_if_sealed(kind, spec, f"{type(error).__name__}: {error}")
                warnings.warn(f"artifact {path} is corrupt ({type(error).__name__}: {error}); "
                              f"recomputing it", stacklevel=2)
        else:
            self._refuse_if_sealed(kind, spec)
        payload = dict(_timed(kind, spec, compute))
        payload["_key"] = key
        atomic_torch_save({**payload, "_sha256": payload_digest(payload)}, path)
        atomic_write_text(json.dumps(to_jsonable(spec), indent=1, sort_keys=True),
                          path.with_suffix(".json"))
        self._fresh.add(path.name)
        return payload

    def table(self, kind: str, spec: Mapping[str, Any],
              compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        """A DataFrame, stored as CSV with a SHA-256 sidecar that detects a corrupt file."""
        path = self.path(kind, spec, ".csv")
        digest_path = path.with_suffix(".sha256")
        if self._reuse(path):
            try:
                data = path.read_bytes()
                if not digest_path.is_file() or digest_path.read_text() != hashlib.sha256(data).hexdigest():
                    raise CorruptArtifact("checksum mismatch")
                return pd.read_csv(io.BytesIO(data), keep_default_na=False,
                                   na_values=["", "NaN", "nan"], dtype={"forget_set": str})
            except Exception as error:
                self._refuse_if_sealed(kind, spec, f"{type(error).__name__}: {error}")
                warnings.warn(f"artifact {path} is corrupt ({type(error).__name__}: {error}); "
                              f"recomputing it", stacklevel=2)
        else:
            self._refuse_if_sealed(kind, spec)
        table = _timed(kind, spec, compute)
        data = table.to_csv(index=False).encode()
        atomic_write_bytes(data, path)
        atomic_write_text(hashlib.sha256(data).hexdigest(), digest_path)
        self._fresh.add(path.name)
        return table
