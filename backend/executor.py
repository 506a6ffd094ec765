"""Where the heavy, parallel parts of jobs run: in this process (``local``, the default: no extra process on a
laptop) or on a Ray cluster (``ray``: ``$RAY_ADDRESS``, or a local Ray cluster started on first use).

An executor maps a module-level function over task arguments and yields the results **in task order**, as they
complete; the caller (a job's single writer) stores each result, so DuckDB keeps one writer and a killed job redoes
only what it had not stored. Tasks must not open the workspace (the writer may hold it): pass them arrays.

The executor is chosen per call (``executor="ray"``), or for every job by ``$VOXELSCOPE_EXECUTOR``.
"""
from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import InvalidInputError

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "get_executor", "gpus_for"]

EXECUTORS = ("local", "ray")
REPO_ROOT = Path(__file__).resolve().parent.parent


class Executor:
    """``map(fn, tasks, num_gpus=0)``: ``fn(*task)`` for every task, results in task order."""

    name = "executor"

    def map(self, fn: Callable, tasks: Iterable[tuple], num_gpus: float = 0) -> Iterator:
        raise NotImplementedError

    def put(self, obj):
        """``obj`` as a task argument shared by many tasks (Ray: stored once in the object store)."""
        return obj


class LocalExecutor(Executor):
    """In this process, one task after another."""

    name = "local"

    def map(self, fn, tasks, num_gpus=0):
        for task in tasks:
            yield fn(*task)


class RayExecutor(Executor):
    """Tasks as Ray remote functions; at most ``max_in_flight`` submitted and not yet collected (default: twice the
    cluster's CPUs), so a long task list never floods the object store. GPU tasks request ``num_gpus``: a cluster with
    N GPUs runs N at once.

    Parameters
    ----------
    address : str, optional
        A running cluster (``ray://host:10001`` or ``host:6379``); default ``$RAY_ADDRESS``, else a local cluster.
    num_cpus : int, optional
        CPUs of a local cluster (default: all).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_in_flight: int | None = None,
                 object_store_mb: int = 256):
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is in requirements.txt
            raise InvalidInputError("the Ray executor needs the `ray` package (pip install -r requirements.txt)") from exc
        self.ray = ray
        address = address or os.environ.get("RAY_ADDRESS") or None
        if not ray.is_initialized():
            pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
            kw = {} if address else {"num_cpus": num_cpus, "object_store_memory": object_store_mb * 2**20,
                                     "include_dashboard": False}
            ray.init(address=address, log_to_driver=False, configure_logging=False,
                     runtime_env={"env_vars": {"PYTHONPATH": pythonpath, "HF_HUB_OFFLINE": "1"}}, **kw)
        self.max_in_flight = max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))

    def put(self, obj):
        return self.ray.put(obj)

    def map(self, fn, tasks, num_gpus=0):
        remote = self.ray.remote(num_gpus=num_gpus, num_cpus=1)(fn)
        pending: deque = deque()
        for task in tasks:
            pending.append(remote.remote(*task))
            if len(pending) >= self.max_in_flight:
                yield self.ray.get(pending.popleft())
        while pending:
            yield self.ray.get(pending.popleft())

    @staticmethod
    def shutdown() -> None:
        """Stop this process's connection (and the local cluster it started)."""
        import ray

        ray.shutdown()


def get_executor(name: "str | Executor | None" = None, **kw) -> Executor:
    """The executor called ``name`` (``local`` or ``ray``; default ``$VOXELSCOPE_EXECUTOR``, else ``local``); an
    :class:`Executor` given instead is returned as it is (what every ``executor=`` parameter accepts)."""
    if isinstance(name, Executor):
        return name
    name = name or os.environ.get("VOXELSCOPE_EXECUTOR") or "local"
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(**kw)
    raise InvalidInputError(f"unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}")


def gpus_for(device: str) -> int:
    """GPUs a task on ``device`` asks the executor for: one on CUDA, none on the CPU."""
    return 1 if str(device).startswith("cuda") else 0
