"""Every model and table the book reads, planned as a dependency graph and computed ahead of
the chapters, in this process or on a Ray cluster.

    from illusion import plan
    graph = plan.plan("default")                     # {node: the nodes it needs}
    plan.run("default")                              # here, one node after another
    plan.run("default", executor="ray")              # as Ray tasks on a new local cluster
    plan.run("default", executor="ray", address="head-node:6379")   # on an existing cluster

A node is a short list of calls of :class:`~illusion.experiment.Experiment` methods, made
exactly as a chapter makes them (``exp.unlearned("rl", 6, "cmf")``, ``exp.evaluate(model, 6,
lp="sgd")``): an artifact's store key is the chapter's by construction, and the chapters run
afterwards read every model and table from the store. A node trains one model, or computes every
stored table of one model, or one unlearning curve, after the models it starts from. Each is
idempotent: what is stored is loaded, not computed, so a second run computes nothing, and a task
run again after its worker died finishes the work (the store writes atomically: a killed task
leaves no partial artifact).

A Ray task gets the configuration (profile name, overrides, store root), never a model: the
worker rebuilds the Experiment and loads what it needs from the store. The store must therefore
be one filesystem every worker sees at the same path (NFS, a shared disk), the data readable on
every worker (``$ILLUSION_DATA``), and this package importable there. A CPU worker keeps its
Experiment from one task to the next (the data loads once); Ray runs each GPU task in a fresh
worker process, which gives its GPU memory back when the task ends.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import torch

from .config import ForgetSet, Profile, paper_cmf_epochs, resolve
from .attacks import FRESH_ATTACKS
from .experiment import Experiment
from .heads import SECOND_OPINION_PROBE
from .models import ensure_pretrained
from .paths import cache_dir, data_dir
from .store import Store
from .unlearn import having

MAIN = ""  # the setting of the chapters' own Experiment: no overrides of its own
RETRIES = 3  # times Ray runs a task again whose worker died (an error in the task is final)


class PlanError(ValueError):
    """An unknown executor, or an address without Ray."""


@dataclass(frozen=True)
class Call:
    """``exp.<method>(*args, **kwargs)``; an argument that is itself a Call (a model) is made
    first, on the same Experiment."""

    method: str
    args: tuple = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __call__(self, exp: Experiment) -> Any:
        args = [a(exp) if isinstance(a, Call) else a for a in self.args]
        return getattr(exp, self.method)(*args, **dict(self.kwargs))

    def __str__(self) -> str:
        parts = [str(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]
        return f"{self.method}({', '.join(parts)})"


ORIGINAL = Call("original")
CMF_ORIGINAL = Call("cmf_original")
# The model each variant starts from (experiment.VARIANTS[variant].base; tests check they agree).
VARIANT_BASE = {"full": ORIGINAL, "classifier_only": ORIGINAL, "cmf": CMF_ORIGINAL}
MODELS = ("original", "cmf_original", "retrain", "unlearned")


def retrain(forget_set: ForgetSet) -> Call:
    return Call("retrain", (forget_set,))


def unlearned(method: str, forget_set: ForgetSet, variant: str = "full") -> Call:
    return Call("unlearned", (method, forget_set, variant))


def table(kind: str, model: Call, forget_set: ForgetSet, **kwargs: Any) -> Call:
    """``exp.evaluate``, ``metrics``, ``layerwise`` or ``relearning`` of ``model``."""
    return Call(kind, (model, forget_set), tuple(sorted(kwargs.items())))


def curve(method: str, forget_set: ForgetSet, variant: str = "full", **kwargs: Any) -> Call:
    return Call("unlearning_curve", (method, forget_set, variant), tuple(sorted(kwargs.items())))


def base(model: Call) -> Call | None:
    """The model ``model`` starts from; None for the Original and Retrain (from scratch)."""
    if model.method == "cmf_original":
        return ORIGINAL
    if model.method in ("unlearned", "unlearning_curve"):
        return VARIANT_BASE[model.args[2]]
    return None


def curve_models(call: Call) -> list[Call]:
    """The models a curve reads: its base, and for a step curve at the profile's settings the
    stored run whose step count it takes (``Experiment.unlearning_curve``)."""
    options = dict(call.kwargs)
    counted = options.get("at", "step") == "step" and options.get("epochs") is None
    return [base(call)] + ([unlearned(*call.args)] if counted else [])


def setting(overrides: Mapping[str, Any]) -> str:
    """A chapter's second Experiment, as the overrides it adds to the chapters' profile."""
    return json.dumps(overrides, sort_keys=True)


def all_variants(p: Profile, forget_sets) -> list[tuple[Call, ForgetSet]]:
    """The models of ``Experiment.all_variants(forget_sets)``, with their forget sets."""
    baselines, edits = having("baseline"), having("edits_classifier")
    models = []
    for fs in forget_sets:
        models += [(ORIGINAL, fs), (retrain(fs), fs)] + [(unlearned(m, fs), fs) for m in baselines]
    models += [(unlearned(m, fs, "cmf"), fs) for fs in forget_sets
               for m in p.variant_method_names("cmf")]
    models += [(unlearned(m, fs, "classifier_only"), fs) for fs in forget_sets
               for m in baselines if m not in edits]
    return models


def requests(p: Profile) -> list[tuple[str, Call]]:
    """What every chapter (``book/NN_*.py``) asks the store for on profile ``p``, as (setting,
    call), chapter by chapter. Keep in step with the chapters: make test's nbval runs them on a
    store filled by this plan and sealed (:data:`illusion.store.SEALED`), and so does make
    book on its profile: a chapter asking for what this does not plan fails, naming it."""
    evaluate = lambda model, fs, **kw: table("evaluate", model, fs, **kw)  # noqa: E731
    fss = p.forget_sets
    single = p.buckets.get("single", ())
    first = (single or fss)[0]
    edits = having("edits_classifier")
    cmf_methods = p.variant_method_names("cmf")
    retrains = {fs: retrain(fs) for fs in fss}
    calls: list[Call] = []

    def both_probes(model: Call, fs: ForgetSet) -> list[Call]:
        """``exp.evaluate(model, fs, second_opinion=True)``: the heads, and the L-BFGS probe."""
        return [evaluate(model, fs), evaluate(model, fs, heads=("lp",), lp=SECOND_OPINION_PROBE)]

    # 01_setup: the Original and every Retrain under the three heads; both linear probes on
    # them and, on the first single-class forget set, on every kind of model the claims use.
    for fs in fss:
        calls += [evaluate(ORIGINAL, fs), evaluate(retrains[fs], fs)]
    baselines = having("baseline")
    kinds = ([(ORIGINAL, first)] + [(r, fs) for fs, r in retrains.items()]
             + [(unlearned(m, first), first) for m in baselines]
             + [(unlearned(m, first, "classifier_only"), first) for m in baselines
                if m not in edits]
             + [(CMF_ORIGINAL, first)] + [(unlearned(m, first, "cmf"), first) for m in cmf_methods])
    for model, fs in kinds:
        calls += [evaluate(model, fs, heads=("lp",), lp=lp) for lp in ("lbfgs", "sgd")]

    # 02_misalignment: every baseline (and defence) in full with its heads (both probes) and
    # metrics; on the first single-class forget set, RL's curve and the layer-wise probes.
    defences = having("defence")
    for fs in fss:
        for model in (ORIGINAL, retrains[fs], *(unlearned(m, fs) for m in (*baselines, *defences))):
            calls += [*both_probes(model, fs), table("metrics", model, fs)]
    if single:
        calls.append(curve("rl", first, points=8))
        calls += [table("layerwise", model, first) for model in
                  (ORIGINAL, unlearned("rl", first), unlearned("salun", first), retrains[first])]

    # 03_neural_collapse: the features of the Original and of every Retrain (not stored).
    calls += [ORIGINAL, *retrains.values()]

    # 04_classifier_only: every method in full and classifier-only (the methods that only edit
    # the last layer are shown as their full runs); the metrics of the classifier-only models.
    for fs in fss:
        calls += [*both_probes(ORIGINAL, fs), *both_probes(retrains[fs], fs),
                  table("metrics", ORIGINAL, fs)]
        for m in (m for m in p.methods if m not in defences):
            calls += both_probes(unlearned(m, fs), fs)
            if m not in edits:
                learnt = unlearned(m, fs, "classifier_only")
                calls += [*both_probes(learnt, fs), table("metrics", learnt, fs)]

    # 05_cmf: the CMF Original, every CMF method in full and under CMF, the CMF models' heads
    # in both geometries; curves in full and under CMF, and at the paper's epochs where the
    # profile is not one of the paper's recipes (config.paper_cmf_epochs).
    for fs in fss:
        calls += [*both_probes(ORIGINAL, fs), *both_probes(CMF_ORIGINAL, fs),
                  *both_probes(retrains[fs], fs)]
        calls += [c for m in cmf_methods for v in ("full", "cmf")
                  for c in both_probes(unlearned(m, fs, v), fs)]
        for model in (CMF_ORIGINAL, *(unlearned(m, fs, "cmf") for m in cmf_methods)):
            calls += [evaluate(model, fs, geometry=g) for g in ("model", "raw")]
    curve_method = "rl" if "rl" in cmf_methods else cmf_methods[0]
    calls += [curve(curve_method, first, v) for v in ("full", "cmf")]
    calls += [curve(m, first, "cmf", epochs=epochs, at="epoch")
              for m, epochs in paper_cmf_epochs(p).items()]

    # 06_relearning and 09_reproducibility: the attacks on every variant of the attacked forget
    # sets; the heads of every variant on every forget set, and of the CMF Original.
    calls += [table("relearning", model, fs) for model, fs in all_variants(p, p.attacked_forget_sets)]
    calls += [c for model, fs in all_variants(p, fss) for c in both_probes(model, fs)]
    calls += [evaluate(CMF_ORIGINAL, fs) for fs in fss]

    # 07_beyond: the probes beyond the paper on every baseline and defence in full, the
    # Original and Retrain, on the attacked forget sets.
    for fs in p.attacked_forget_sets:
        for model in (ORIGINAL, retrains[fs], *(unlearned(m, fs) for m in (*baselines, *defences))):
            calls += [table(kind, model, fs) for kind in
                      ("prototype_attack", "over_unlearning", "similarity", "relearning")]
            calls.append(table("relearning", model, fs, attacks=FRESH_ATTACKS))

    # 08_deviations: classifier-only RL, SalUn and NegGrad+ in this profile's protocol and in the
    # authors'; the heads on augmented training features; the MIA models (features only).
    requested = [(MAIN, call) for call in calls]
    for m in ("rl", "salun", "neggrad_plus"):
        options = dict(p.method(m, "classifier_only").options)
        authors = setting({f"variant_methods.classifier_only.{m}.options":
                           {**options, "protocol": "authors"}})
        for where in (MAIN, authors):
            requested.append((where, evaluate(unlearned(m, first, "classifier_only"), first,
                                              heads=("output",))))
    augmented = setting({"heads.augment_train": True})
    for fs in fss:
        for where in (MAIN, augmented):
            requested += [(where, evaluate(model, fs))
                          for model in (ORIGINAL, retrains[fs], unlearned("rl", fs))]
    requested += [(MAIN, model) for model in
                  (ORIGINAL, retrains[first], unlearned("rl", first), unlearned("salun", first))]
    return requested


@dataclass(frozen=True)
class Node:
    """One task: ``calls`` made in order on the Experiment of ``setting`` (:func:`setting`)."""

    calls: tuple[Call, ...]
    setting: str = MAIN

    def __str__(self) -> str:
        first = self.calls[0]
        if first.method in MODELS:
            text = str(first)
        elif first.method == "unlearning_curve":
            text = f"curve {first}"
        else:  # the tables of one model
            text = f"{', '.join(dict.fromkeys(c.method for c in self.calls))} of {first.args[0]}"
        return text + (f" on {self.setting}" if self.setting else "")


def plan(profile: str, overrides: Mapping[str, Any] | str | None = None) -> dict[Node, tuple[Node, ...]]:
    """Every node the chapters need on ``profile`` with ``overrides``, mapped to the nodes it
    needs; a node comes after those it needs (a topological order)."""
    p = resolve(profile, overrides)
    graph: dict[Node, tuple[Node, ...]] = {}

    def add(node: Node, needs: list[Node]) -> Node:
        graph.setdefault(node, tuple(dict.fromkeys(needs)))
        return node

    def train(model: Call, where: str) -> Node:
        needs = [train(b, where)] if (b := base(model)) is not None else []
        if where != MAIN:
            # A second Experiment's model is often the chapters' own artifact (its overrides
            # leave the key unchanged): trained after it, it is then a store hit, not a race.
            needs.append(train(model, MAIN))
        return add(Node((model,), where), needs)

    tables: dict[tuple[str, Call], list[Call]] = {}
    for where, call in requests(p):
        if call.method in MODELS:
            train(call, where)
        elif call.method == "unlearning_curve":
            add(Node((call,), where), [train(m, where) for m in curve_models(call)])
        else:
            calls = tables.setdefault((where, call.args[0]), [])
            if call not in calls:
                calls.append(call)
    for (where, model), calls in tables.items():
        # Every table but the layer-wise probes reads the Original's features too, and the
        # similarity table Retrain's.
        retrains = [train(retrain(c.args[1]), where) for c in calls if c.method == "similarity"]
        add(Node(tuple(calls), where), [train(model, where), train(ORIGINAL, where), *retrains])
    return graph


def subgraph(graph: Mapping[Node, tuple[Node, ...]], nodes) -> dict[Node, tuple[Node, ...]]:
    """``nodes`` and every node they need, in the order of ``graph``."""
    wanted: set[Node] = set()
    todo = list(nodes)
    while todo:
        node = todo.pop()
        if node not in wanted:
            wanted.add(node)
            todo += graph[node]
    return {node: needs for node, needs in graph.items() if node in wanted}


# --------------------------------------------------------------------------------------------
# Executing a plan


class CountingStore(Store):
    """The store, counting the artifacts it computes (a stored one is only loaded)."""

    def __init__(self, root: str | os.PathLike):
        super().__init__(root)
        self.computed = 0

    def _counted(self, compute: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            result = compute()
            self.computed += 1
            return result
        return run

    def load_or_compute(self, kind, spec, compute):
        return super().load_or_compute(kind, spec, self._counted(compute))

    def table(self, kind, spec, compute):
        return super().table(kind, spec, self._counted(compute))


@dataclass(frozen=True)
class Config:
    """What a worker rebuilds an Experiment from: no model, no data. ``run`` tells one run from
    the next, whose workers must not trust what the last one held in memory (the store may have
    changed in between)."""

    profile: str
    overrides: Mapping[str, Any]
    store: str
    run: str = field(default_factory=lambda: uuid.uuid4().hex)

    def experiment(self, where: str, store: Store) -> Experiment:
        # As chapter 7 builds its second Experiments: on the chapters' resolved profile.
        return Experiment(resolve(self.profile, self.overrides),
                          json.loads(where) if where else None, store=store)


class Worker:
    """Computes nodes, keeping one Experiment per configuration and setting: the data, models and
    features a node loads stay in memory for the next, as in a chapter."""

    def __init__(self):
        self.run = None
        self.experiments: dict[str, Experiment] = {}

    def __call__(self, node: Node, config: Config) -> int:
        """Make the calls of ``node``; the number of artifacts computed (0: all stored)."""
        if config.run != self.run:
            self.run, self.experiments = config.run, {}
        if node.setting not in self.experiments:
            self.experiments[node.setting] = config.experiment(node.setting,
                                                               CountingStore(config.store))
        exp = self.experiments[node.setting]
        before = exp.store.computed
        for call in node.calls:
            call(exp)
        return exp.store.computed - before


WORKER = Worker()  # this process's: a Ray worker's is kept from one task to the next


def work(node: Node, config: Config) -> int:
    """A node on this process's :data:`WORKER` (a function Ray sends by name, not by value)."""
    return WORKER(node, config)


def run_serial(graph: Mapping[Node, tuple[Node, ...]], config: Config) -> Iterator[tuple[Node, int]]:
    """Each node in this process, in the graph's order."""
    worker = Worker()
    for node in graph:
        yield node, worker(node, config)


def _ray_task(task: Callable[[Node, Config], int], node: Node, config: Config, *needs: int) -> int:
    """A node on a Ray worker (``needs``: the results of the nodes it needs, so Ray runs it after
    them), torch on the worker's share of CPUs."""
    import ray

    torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
    return task(node, config)


def run_ray(graph: Mapping[Node, tuple[Node, ...]], config: Config, address: str | None = None,
            task: Callable[[Node, Config], int] = work) -> Iterator[tuple[Node, int]]:
    """Each node as a Ray task, with one GPU when the cluster has GPUs, else one CPU, run again
    when its worker dies. On the Ray this process has initialised, else on the cluster at
    ``address``, else on a new local cluster (shut down at the end)."""
    import ray

    started = not ray.is_initialized()
    if started:
        # "local": a new cluster, never one another process of this machine left running.
        ray.init(address=address or "local", include_dashboard=False,
                 runtime_env=None if address else {"env_vars": {"ILLUSION_DATA": str(data_dir())}})
    pending: dict[Any, Node] = {}
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=RETRIES)(_ray_task)
        refs: dict[Node, Any] = {}
        for node, needs in graph.items():
            refs[node] = remote.remote(task, node, config, *(refs[n] for n in needs))
        pending = {ref: node for node, ref in refs.items()}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            node = pending.pop(done[0])
            yield node, ray.get(done[0])
    finally:
        for ref in pending:  # after an error: stop the others, on any cluster
            ray.cancel(ref)
        if started:
            ray.shutdown()


def _one_thread_worker() -> None:
    """A process of :func:`run_processes`: torch on one thread (two single-threaded processes do
    more work per second on two cores than one process on both)."""
    torch.set_num_threads(1)


def run_processes(graph: Mapping[Node, tuple[Node, ...]], config: Config, jobs: int | None = None
                  ) -> Iterator[tuple[Node, int]]:
    """Each node in one of ``jobs`` processes of this machine (default: one per core; one on a
    machine with a GPU), on one torch thread each, as soon as the nodes it needs are done; a node's error ends the run
    (the nodes already running finish, none starts). Each process keeps its
    :data:`WORKER` (data, models, features) from one node to the next."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # On a GPU one process has the device to itself (several would share its memory).
    jobs = jobs or (1 if torch.cuda.is_available() else os.cpu_count() or 1)
    needs = {node: set(n) for node, n in graph.items()}
    done: set[Node] = set()
    context = multiprocessing.get_context("spawn")  # a fresh interpreter, no forked torch state
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_one_thread_worker) as pool:
        running: dict[Any, Node] = {}
        waiting = list(graph)  # in the graph's (topological) order: the Original first
        while waiting or running:
            ready = [node for node in waiting if needs[node] <= done]
            # Never more queued than workers: a later-ready node on the critical path (the
            # Original's dependants) must not wait behind a queue of others.
            for node in ready[:max(0, jobs - len(running))]:
                waiting.remove(node)
                running[pool.submit(work, node, config)] = node
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                node = running.pop(future)
                computed = future.result()  # re-raises the node's error here
                done.add(node)
                yield node, computed


EXECUTORS = ("serial", "processes", "ray")


@dataclass
class Summary:
    executor: str
    planned: int = 0
    computed: int = 0  # nodes that computed an artifact
    artifacts: int = 0
    seconds: float = 0.0

    @property
    def stored(self) -> int:
        """Nodes whose every artifact was already stored."""
        return self.planned - self.computed

    def __str__(self) -> str:
        return (f"{self.planned} nodes planned: {self.computed} computed ({self.artifacts} "
                f"artifacts), {self.stored} already stored; {self.seconds:.1f} s ({self.executor})")


def run(profile: str = "default", overrides: Mapping[str, Any] | None = None,
        executor: str = "serial", address: str | None = None, store: str | os.PathLike | None = None,
        progress: Callable[[str], None] | None = print, jobs: int | None = None) -> Summary:
    """Compute every model and table the chapters read on ``profile`` with ``overrides`` into
    ``store`` (default: ``$ILLUSION_CACHE``), with ``executor``: "serial" (this process),
    "processes" (``jobs`` single-threaded processes of this machine, default one per core) or
    "ray" (at ``address`` or on a new local cluster); ``progress`` gets a line per node that
    computed."""
    if executor not in EXECUTORS:
        raise PlanError(f"unknown executor {executor!r}; valid choices: {list(EXECUTORS)}")
    if address and executor != "ray":
        raise PlanError(f"address {address!r} is for the 'ray' executor, not {executor!r}")
    start = time.perf_counter()
    graph = plan(profile, overrides)
    # Missing pretrained weights stop the run here, not in a worker after others started.
    ensure_pretrained(resolve(profile, overrides).model)
    config = Config(profile, dict(overrides or {}), str(store or cache_dir()))
    summary = Summary(executor, planned=len(graph))
    steps = (run_ray(graph, config, address) if executor == "ray" else
             run_processes(graph, config, jobs) if executor == "processes" else
             run_serial(graph, config))
    for done, (node, computed) in enumerate(steps, 1):
        if computed:
            summary.computed += 1
            summary.artifacts += computed
            if progress:
                progress(f"[{done}/{len(graph)}] {node}: {computed} computed")
    summary.seconds = time.perf_counter() - start
    return summary
