"""CPU thread counts for torch, TensorFlow and onnxruntime.

Frameworks default to one thread per core and spin while they wait for each other. On a machine that other
processes keep busy, that is ruinous: on a 2-core machine running several jobs, torch trained the digits CNN
30x slower with its default 2 threads than with 1. dlspec's default is the number of cores this process may
use minus the load already on them (rounded down, at least 1): all the cores on an idle machine, 1 on a busy
one. ``dlspec train``, ``parity``, ``bench`` and ``compare`` print the count in their header; ``--threads N`` sets it.
"""

from __future__ import annotations

import os
import sys

current: int | None = None  # the count chosen for this process (read by the onnxruntime sessions)


def cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load() -> float:
    """The 1-minute load average (0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def default_threads(n_cores: int | None = None, load_average: float | None = None, processes: int | None = None) -> int:
    """Free cores: the usable cores minus the current load, shared among the processes torchrun started on this
    machine (LOCAL_WORLD_SIZE), at least 1, at most the cores."""
    n_cores = cores() if n_cores is None else n_cores
    load_average = load() if load_average is None else load_average
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if processes is None else processes
    return max(1, min(n_cores, n_cores - int(load_average)) // max(1, processes))


def apply(threads: int | None, backends=("torch", "keras", "onnx")) -> tuple[int, str]:
    """Set the thread count of the given backends (``threads`` None: the default); returns (count, a phrase
    for the run's header such as "1 thread (default: 2 cores, load 9.6; --threads N to change)")."""
    global current
    chosen = default_threads() if threads is None else threads
    current = chosen
    why = (f"default: {cores()} cores, load {load():.1f}; --threads N to change" if threads is None
           else "--threads")
    os.environ["OMP_NUM_THREADS"] = str(chosen)  # for libraries not yet loaded
    if "torch" in backends:
        _torch(chosen)
    if "keras" in backends:
        _tensorflow(chosen)
    return chosen, f"{chosen} thread{'s' if chosen != 1 else ''} ({why})"


def _torch(n: int) -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # only settable before the first parallel work; the intra-op count is what matters
        pass


def _tensorflow(n: int) -> None:
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(n)  # read by TensorFlow when it starts its runtime
    os.environ["TF_NUM_INTEROP_THREADS"] = str(n)
    tf = sys.modules.get("tensorflow")
    if tf is None:  # not imported yet: the environment is enough (and importing it here would cost seconds)
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # TensorFlow already initialised its runtime: the environment above applies next time
        pass
