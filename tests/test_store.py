import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import illusion
from illusion.config import get_profile
from illusion.store import Store, atomic_write_bytes, spec_key


def test_key_changes_with_any_setting():
    p = get_profile("smoke")
    base = {"kind": "original", "train": p.original, "data": p.data}
    changed = {"kind": "original", "train": p.original, "data": p.data.__class__(
        **{**p.data.__dict__, "seed": 7})}
    assert spec_key(base) == spec_key(dict(reversed(list(base.items()))))  # order-free
    assert spec_key(base) != spec_key(changed)
    assert spec_key({**base, "parent": "a"}) != spec_key({**base, "parent": "b"})


def test_load_or_compute_reuses_and_force_recomputes(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"w": torch.ones(3) * len(calls)}

    store = Store(tmp_path)
    first = store.load_or_compute("models", {"a": 1}, compute)
    again = Store(tmp_path).load_or_compute("models", {"a": 1}, compute)
    assert len(calls) == 1 and torch.equal(first["w"], again["w"])
    forced = Store(tmp_path, force=True)
    forced.load_or_compute("models", {"a": 1}, compute)
    forced.load_or_compute("models", {"a": 1}, compute)  # once per process only
    assert len(calls) == 2


def test_corrupt_artifact_is_detected_and_recomputed(tmp_path):
    store = Store(tmp_path)
    store.load_or_compute("models", {"a": 1}, lambda: {"w": torch.zeros(2)})
    path = store.path("models", {"a": 1}, ".pt")
    path.write_bytes(path.read_bytes()[:20])  # a torn write
    with pytest.warns(UserWarning, match="corrupt"):
        payload = Store(tmp_path).load_or_compute("models", {"a": 1}, lambda: {"w": torch.ones(2)})
    assert torch.equal(payload["w"], torch.ones(2))


def test_corrupt_table_is_detected_and_recomputed(tmp_path):
    store = Store(tmp_path)
    store.table("t", {"b": 2}, lambda: pd.DataFrame({"x": [1, 2]}))
    path = store.path("t", {"b": 2}, ".csv")
    path.write_text("x\n1\n999\n")
    with pytest.warns(UserWarning, match="checksum"):
        table = Store(tmp_path).table("t", {"b": 2}, lambda: pd.DataFrame({"x": [3]}))
    assert table["x"].tolist() == [3]


def test_failed_compute_leaves_no_artifact(tmp_path):
    store = Store(tmp_path)

    def boom():
        raise RuntimeError("interrupted")
    with pytest.raises(RuntimeError):
        store.load_or_compute("models", {"c": 3}, boom)
    assert not store.path("models", {"c": 3}, ".pt").exists()


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    atomic_write_bytes(b"old", path)

    def crash(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(b"new", path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temp file left


def test_checkpoints_refuse_pickled_code(tmp_path):
    store = Store(tmp_path)
    store.load_or_compute("models", {"d": 4}, lambda: {"w": torch.zeros(1)})
    path = store.path("models", {"d": 4}, ".pt")
    # A pickled callable would run code on load; weights_only refuses it.
    torch.save({"w": os.getcwd, "_key": spec_key({"d": 4})}, path)
    with pytest.warns(UserWarning, match="corrupt"):
        Store(tmp_path).load_or_compute("models", {"d": 4}, lambda: {"w": torch.ones(1)})


def test_damaged_tensor_bytes_are_detected_and_recomputed(tmp_path):
    store = Store(tmp_path)
    store.load_or_compute("models", {"e": 5}, lambda: {"w": torch.full((64,), 1.5)})
    path = store.path("models", {"e": 5}, ".pt")
    data = path.read_bytes()
    at = data.index(torch.full((64,), 1.5).numpy().tobytes())
    path.write_bytes(data[:at + 8] + b"\xff" * 8 + data[at + 16:])  # two NaNs, same length
    assert torch.load(path, weights_only=True)["w"].isnan().sum() == 2  # torch loads it
    with pytest.warns(UserWarning, match="corrupt.*checksum mismatch"):
        payload = Store(tmp_path).load_or_compute("models", {"e": 5}, lambda: {"w": torch.ones(64)})
    assert torch.equal(payload["w"], torch.ones(64))


def test_a_payload_without_checksum_is_recomputed(tmp_path):
    store = Store(tmp_path)
    store.load_or_compute("models", {"f": 6}, lambda: {"w": torch.zeros(2)})
    path = store.path("models", {"f": 6}, ".pt")
    torch.save({"w": torch.zeros(2), "_key": spec_key({"f": 6})}, path)  # an older store's file
    with pytest.warns(UserWarning, match="checksum mismatch"):
        payload = Store(tmp_path).load_or_compute("models", {"f": 6}, lambda: {"w": torch.ones(2)})
    assert torch.equal(payload["w"], torch.ones(2))
    again = Store(tmp_path).load_or_compute("models", {"f": 6}, lambda: {"w": torch.zeros(2)})
    assert torch.equal(again["w"], torch.ones(2)) and "_sha256" not in again


def test_files_get_the_permissions_the_umask_allows(tmp_path):
    # A fresh interpreter with a group-friendly umask (the store reads it once, at import).
    code = ("import os, sys; os.umask(0o027); from illusion.store import atomic_write_text; "
            "atomic_write_text('x', sys.argv[1])")
    env = {**os.environ, "PYTHONPATH": str(Path(illusion.__file__).parents[1])}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "f.txt")], env=env, check=True)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o640


def test_a_sealed_store_reads_but_refuses_to_compute_and_writes_nothing(tmp_path, monkeypatch):
    from illusion.store import SEALED, SealedStoreMiss

    sealed, other = Store(tmp_path / "sealed"), Store(tmp_path / "other")
    stored = sealed.load_or_compute("models", {"kind": "original"}, lambda: {"w": torch.ones(2)})
    sealed.table("evaluations", {"kind": "evaluate"}, lambda: pd.DataFrame({"a": [1]}))
    before = sorted(p.name for p in (tmp_path / "sealed").rglob("*"))
    monkeypatch.setenv(SEALED, str(tmp_path / "sealed" / ".." / "sealed"))  # any spelling of it

    def computes():
        raise AssertionError("a sealed store computed")
    assert torch.equal(sealed.load_or_compute("models", {"kind": "original"}, computes)["w"],
                       stored["w"])
    assert list(sealed.table("evaluations", {"kind": "evaluate"}, computes)["a"]) == [1]
    missing = {"kind": "unlearn", "method": "rl", "variant": "cmf"}
    with pytest.raises(SealedStoreMiss, match=rf"unlearn rl cmf \(key {spec_key(missing)}\) is "
                                              rf"not in the store .*illusion.plan.requests"):
        sealed.load_or_compute("models", missing, computes)
    with pytest.raises(SealedStoreMiss, match=r"metrics .* is not in the store"):
        sealed.table("metrics", {"kind": "metrics"}, computes)
    with pytest.raises(SealedStoreMiss):  # force would recompute what is there
        Store(tmp_path / "sealed", force=True).load_or_compute("models", {"kind": "original"},
                                                                computes)
    (tmp_path / "sealed" / "evaluations" / f"{spec_key({'kind': 'evaluate'})}.csv").write_text("x")
    with pytest.raises(SealedStoreMiss, match=r"evaluate .* is corrupt in the store .*illusion run. again"):
        sealed.table("evaluations", {"kind": "evaluate"}, computes)
    assert sorted(p.name for p in (tmp_path / "sealed").rglob("*")) == before
    # Another store computes as ever.
    assert list(other.table("metrics", {"kind": "metrics"}, lambda: pd.DataFrame({"b": [2]}))["b"]) == [2]


def test_sealing_a_store_for_a_block_restores_what_was_there(tmp_path, monkeypatch):
    from illusion.store import SEALED, sealed, sealed_root

    monkeypatch.delenv(SEALED, raising=False)
    with sealed(tmp_path / "a"):
        assert sealed_root() == (tmp_path / "a").resolve()
    assert SEALED not in os.environ
    monkeypatch.setenv(SEALED, str(tmp_path / "b"))
    with pytest.raises(RuntimeError), sealed(tmp_path / "a"):
        raise RuntimeError("a chapter failed")  # the seal is lifted on the way out
    assert os.environ[SEALED] == str(tmp_path / "b")
