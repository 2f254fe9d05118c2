"""``illusion run`` (:mod:`illusion.plan`): the book's artifacts planned as a graph and computed
in this process, in processes or on a local Ray cluster, the same store each way. That the
chapters then compute nothing is make test's nbval: every chapter runs in its own kernel on the
store ``illusion run`` filled for the TINY plan, sealed (``ILLUSION_SEALED_STORE``), so a
chapter asking for an artifact the plan lacks fails there."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import ray
import torch

from illusion import plan
from illusion.cli import main
from illusion.config import ForgetSet
from illusion.experiment import VARIANTS

# The smoke profile on 4 synthetic classes of 12x12 images, with the shortest probe, attacks and
# UNSIR: its whole plan (131 nodes, every kind) computes in about half a minute. make test runs
# the same plan (illusion run --overrides tests/tiny.json) and every chapter on it under nbval.
TINY = json.loads((Path(__file__).parent / "tiny.json").read_text())


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The store of the whole TINY plan, computed serially."""
    config = plan.Config("smoke", TINY, str(tmp_path_factory.mktemp("serial")))
    computed = dict(plan.run_serial(plan.plan("smoke", TINY), config))
    assert sum(computed.values()) > 100
    return config


@pytest.fixture(scope="module")
def part():
    return one_of_each_kind(plan.plan("smoke", TINY))


@pytest.fixture(scope="module")
def serial_part(part, tmp_path_factory):
    """The store of that part computed serially: what an executor must store, exactly."""
    config = plan.Config("smoke", TINY, str(tmp_path_factory.mktemp("serial_part")))
    assert sum(n for _, n in plan.run_serial(part, config)) > len(part)
    return config


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def test_every_node_comes_after_the_nodes_it_needs():
    for profile in ("smoke", "default"):
        seen = set()
        for node, needs in plan.plan(profile).items():
            assert set(needs) <= seen, node  # so the graph has no cycle
            seen.add(node)


def test_variant_bases_are_the_experiments():
    class Bases:
        original = staticmethod(lambda: plan.ORIGINAL)
        cmf_original = staticmethod(lambda: plan.CMF_ORIGINAL)
    assert {name: v.base(Bases()) for name, v in VARIANTS.items()} == plan.VARIANT_BASE


def test_subgraph_holds_a_node_and_what_it_needs():
    graph = plan.plan("smoke")
    node = plan.Node((plan.unlearned("rl", ForgetSet((0,)), "cmf"),))
    assert list(plan.subgraph(graph, [node])) == [plan.Node((plan.ORIGINAL,)),
                                                  plan.Node((plan.CMF_ORIGINAL,)), node]


def one_of_each_kind(graph):
    """The part of ``graph`` an executor test runs: the first node of every kind (each model,
    variant and table kind) and what they need, 15 of the TINY plan's 131 nodes."""
    def kind(call):
        if call.method in ("unlearned", "unlearning_curve"):
            return call.method, call.args[2]
        if call.args and isinstance(call.args[0], plan.Call):
            return (call.method, *kind(call.args[0]))
        return (call.method,)
    firsts = {}
    for node in graph:
        firsts.setdefault(kind(node.calls[0]), node)
    return plan.subgraph(graph, firsts.values())


def _files(root):
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()}


def _table(path):
    # A head's "seconds" is a wall time, the one column two runs do not share.
    return pd.read_csv(path).drop(columns="seconds", errors="ignore")


def test_ray_stores_what_serial_stores_though_a_worker_dies(part, serial_part, local_ray,
                                                           tmp_path):
    graph = part
    target = plan.Node((plan.unlearned("rl", ForgetSet((0,))),))
    assert target in graph
    died = tmp_path / "died"

    def dies_once(node, config):
        if node == target and not died.exists():
            died.touch()
            # The worker dies in the middle of its first write: the bytes in a temporary
            # file, not yet renamed into place.
            os.replace = lambda *args: os._exit(1)
        return plan.work(node, config)

    config = plan.Config("smoke", TINY, str(tmp_path / "ray"))
    computed = dict(plan.run_ray(graph, config, task=dies_once))
    assert died.exists() and computed[target] == 1 and set(computed) == set(graph)

    ours, reference = Path(config.store), Path(serial_part.store)
    # The dead write left its temporary file (hidden, never read as an artifact), nothing else.
    leftovers = [p for p in _files(ours) if p.name.startswith(".")]
    assert [p.parent for p in leftovers] == [Path("models")]
    assert_same_store(ours, reference, ignore=leftovers)

    again = plan.Config("smoke", TINY, config.store)
    assert not any(n for _, n in plan.run_ray(graph, again))


def assert_same_store(ours: Path, reference: Path, ignore=()) -> None:
    """The same artifacts, bitwise (tables but for their wall times)."""
    assert _files(ours) - set(ignore) == _files(reference)
    for path in _files(reference):
        if path.suffix == ".csv":
            pd.testing.assert_frame_equal(_table(ours / path), _table(reference / path))
        elif path.suffix == ".pt":
            mine, theirs = (torch.load(root / path, weights_only=True)["state_dict"]
                            for root in (ours, reference))
            assert mine.keys() == theirs.keys()
            assert all(torch.equal(mine[k], theirs[k]) for k in mine), path
        elif path.suffix == ".json":
            assert (ours / path).read_bytes() == (reference / path).read_bytes()


def test_processes_store_what_serial_stores(part, serial_part, tmp_path):
    """Two single-threaded processes, each node after the nodes it needs: the same store."""
    graph = part
    config = plan.Config("smoke", TINY, str(tmp_path / "processes"))
    order = [node for node, _ in plan.run_processes(graph, config, jobs=2)]
    assert sorted(map(str, order)) == sorted(map(str, graph))
    finished = set()
    for node in order:  # a node is reported done only after every node it needs
        assert set(graph[node]) <= finished, node
        finished.add(node)
    assert_same_store(Path(config.store), Path(serial_part.store))


def test_a_second_run_computes_nothing(serial, monkeypatch, capsys):
    """The second run reads the settings as make test passes them: a file, then --set."""
    monkeypatch.setenv("ILLUSION_CACHE", serial.store)
    tiny = Path(__file__).parent / "tiny.json"
    assert main(["run", "--profile", "smoke", "--overrides", str(tiny),
                 "--set", f"heads.sgd_epochs={TINY['heads.sgd_epochs']}"]) == 0
    n = len(plan.plan("smoke", TINY))
    assert capsys.readouterr().out.startswith(f"{n} nodes planned: 0 computed (0 artifacts), "
                                              f"{n} already stored; ")


def test_bad_executor_or_address_names_the_choices(capsys):
    with pytest.raises(plan.PlanError, match=r"unknown executor 'dask'; valid choices: "
                                             r"\['serial', 'processes', 'ray'\]"):
        plan.run("smoke", executor="dask")
    assert main(["run", "--profile", "smoke", "--executor", "dask"]) == 2
    assert ("unknown executor 'dask'; valid choices: ['serial', 'processes', 'ray']"
            in capsys.readouterr().err)
    assert main(["run", "--profile", "smoke", "--jobs", "2"]) == 2
    assert "--jobs 2: give an integer >= 1, with --executor processes" in capsys.readouterr().err
    assert main(["run", "--profile", "smoke", "--overrides", "no-such.json"]) == 2
    assert "illusion run: error: overrides file no-such.json: " in capsys.readouterr().err
    assert main(["run", "--profile", "smoke", "--address", "head:6379"]) == 2
    assert "address 'head:6379' is for the 'ray' executor, not 'serial'" in capsys.readouterr().err
