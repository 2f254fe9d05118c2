"""The executors of ``illusion run`` on this machine: the same nodes of a profile's plan
(``illusion.plan``) computed in one process with torch on ``--cpus`` threads (serial), in
``--cpus`` single-threaded processes (processes), and, with ``--ray``, as Ray tasks on a local
cluster of ``--cpus`` single-threaded workers, each into a fresh store.

    .venv/bin/python benchmarks/executor.py [--profile default] [--epochs 3] [--cpus 2]
                                            [--subset references grid] [--ray]

``references``: the Original and every Retrain (independent trainings: the best case for
workers). ``grid``: those and every model of the first forget set in full, classifier-only and
under CMF, with all the tables the chapters read on it (the book's mix of training, unlearning
and evaluation; the unlearning curves left out).
``--epochs`` shortens the Original's and Retrain's training to keep the run short. The load
average is printed before and after: on a shared machine the numbers move with the neighbours.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import ray
import torch

from illusion import plan
from illusion.config import resolve


def subset(graph, name: str, profile):
    """The nodes of ``name`` (see the module's docstring) and what they need."""
    references = [plan.Node((plan.ORIGINAL,))] + [plan.Node((plan.retrain(fs),))
                                                  for fs in profile.forget_sets]
    if name == "references":
        return plan.subgraph(graph, references)
    first = profile.forget_sets[0]
    return plan.subgraph(graph, references + [
        node for node in graph if not node.setting and node.calls[0].method != "unlearning_curve"
        and any(first in call.args for call in node.calls)])


def timed(steps) -> tuple[float, int]:
    start = time.perf_counter()
    computed = sum(n for _, n in steps)
    return time.perf_counter() - start, computed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--epochs", type=int, default=3, help="Original and Retrain epochs")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--subset", nargs="+", default=["references", "grid"],
                        choices=["references", "grid"])
    parser.add_argument("--ray", action="store_true", help="Ray too")
    args = parser.parse_args()
    overrides = {"original.epochs": args.epochs, "retrain.epochs": args.epochs}
    profile = resolve(args.profile, overrides)
    graph = plan.plan(args.profile, overrides)
    print(f"profile {args.profile!r} with {overrides}; {args.cpus} CPUs; torch "
          f"{torch.__version__}, ray {ray.__version__}; load average before "
          f"{os.getloadavg()[0]:.2f} (a shared machine: other jobs run beside this one)")
    for name in args.subset:
        nodes = subset(graph, name, profile)
        with tempfile.TemporaryDirectory() as root:
            torch.set_num_threads(args.cpus)
            serial = timed(plan.run_serial(nodes, plan.Config(args.profile, overrides,
                                                              f"{root}/serial")))
            processes = timed(plan.run_processes(nodes, plan.Config(args.profile, overrides,
                                                                    f"{root}/processes"),
                                                 args.cpus))
            assert serial[1] == processes[1], (serial, processes)
            print(f"{name}: {len(nodes)} nodes, {serial[1]} artifacts; serial (1 process, "
                  f"{args.cpus} threads) {serial[0]:.1f} s; processes ({args.cpus}, 1 thread "
                  f"each) {processes[0]:.1f} s: speed-up {serial[0] / processes[0]:.2f}x",
                  flush=True)
            if not args.ray:
                continue
            start = time.perf_counter()
            ray.init(address="local", num_cpus=args.cpus, include_dashboard=False,
                     log_to_driver=False)
            started = time.perf_counter() - start
            distributed = timed(plan.run_ray(nodes, plan.Config(args.profile, overrides,
                                                                f"{root}/ray")))
            ray.shutdown()
        if args.ray:
            assert serial[1] == distributed[1], (serial, distributed)
            print(f"{name}: ray ({args.cpus} workers, 1 thread each) {distributed[0]:.1f} s + "
                  f"{started:.1f} s to start the cluster; speed-up "
                  f"{serial[0] / (distributed[0] + started):.2f}x")
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
