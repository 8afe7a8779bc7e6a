"""Worker processes for work that runs side by side (comparison members, tuning trials).

Workers are spawned, not forked: a forked child of a process whose OpenMP threads already ran
can hang. Ctrl-C reaches the parent only, which stops its workers; SIGTERM unwinds a worker
through whatever it was writing (a run directory removes itself); a worker whose parent was
killed outright exits within a second instead of working on for nobody.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.context import SpawnContext
from multiprocessing.pool import Pool
from typing import Any

import torch


def spawn_context() -> SpawnContext:
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def worker_pool(
    jobs: int, initializer: Callable[..., None], initargs: tuple[Any, ...]
) -> Iterator[Pool]:
    """A pool of ``jobs`` spawned workers: closed when the block ends, terminated (its workers
    unwinding) when the block raises, Ctrl-C included."""
    pool = spawn_context().Pool(jobs, initializer=initializer, initargs=initargs)
    try:
        yield pool
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def start_worker(parent: int) -> None:
    """Set up a worker of ``parent``: signals, one torch thread, imports done once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    torch.set_num_threads(1)
    warm_up()


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(1)  # unwinds through the run being written, which removes itself


def _exit_with(parent: int) -> None:
    """End this worker once ``parent`` is gone (killed outright, it could not stop us)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def warm_up() -> None:
    """Import what training imports on first use, so that no run's wall time holds it."""
    import sklearn.metrics  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sklearn.neural_network  # noqa: F401

    import growml.fitting  # noqa: F401
    from growml.runs.plots import pyplot

    pyplot()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # its first use imports torch._dynamo
