"""`fbuild-graph worker`: serve one runner's slots to a Dask scheduler.

One process, two workers: one offering `framework` slots, one offering `sketch` slots, each under a nanny
that restarts it if it dies (its lost tasks are recomputed). One worker per class for the same reason as
the local cluster: a worker only tries its top-priority resource-constrained task (distributed#6136).
A runner whose toolchain does not work never joins: it would fail every step it is given (fitness.py).
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from typing import Optional

from fbuild_graph.arduino import board as boards
from fbuild_graph.execution import fitness
from fbuild_graph.arduino import installs
from fbuild_graph.errors import FbuildError
from fbuild_graph.model import FRAMEWORK, SKETCH
from fbuild_graph.execution.runner import LOCAL_CLUSTER_CONFIG, check_address
from fbuild_graph.execution.transfer import MIRROR_ENV

RUNNER_MEMORY_MONITOR = "distributed.worker.memory.monitor-interval"
TASK_CODE = "fbuild_graph.execution.execute"  # the module of run_steps, which every task calls


def serve(scheduler: str, framework_jobs: int, sketch_jobs: int, local_directory: Optional[str] = None,
          host: Optional[str] = None, board: str = "uno", dirs: Optional[installs.Directories] = None) -> None:
    """`host`: the address the nannies and workers listen on; None, as for `dask worker`: the nannies take
    the address of the interface that routes to the scheduler, the workers listen on every interface and
    advertise that address. `board` and `dirs` (where platforms are installed) name the toolchain checked
    before joining."""
    unfit = fitness.problem(boards.resolve(board, dirs or installs.Directories.from_environment(), {}).properties)
    if unfit:
        raise FbuildError(f"this runner cannot build for {board}: {unfit}; it did not join {scheduler}")
    import dask
    from distributed import Nanny

    check_address(scheduler, "SCHEDULER_ADDRESS")
    # What the local cluster turns off costs the same CPU here; work stealing stays on between runners.
    # The memory limit stays (a worker past it is restarted), checked every second, not every 100 ms: a
    # task holds a few small results, the tools' memory is their own processes', and the polling was most
    # of an idle runner's CPU (two runners idle: 79 -> 23 ms/s, the scheduler aside).
    dask.config.set({**{k: v for k, v in LOCAL_CLUSTER_CONFIG.items() if "work-stealing" not in k},
                     RUNNER_MEMORY_MONITOR: "1s"})
    name = socket.gethostname()
    # Both workers of this runner (and their restarts) share one mirror of the clients' files.
    os.environ[MIRROR_ENV] = os.path.join(os.path.abspath(local_directory or tempfile.gettempdir()),
                                          "fbuild-graph-mirror")

    async def run() -> None:
        # Each worker imports the code its tasks run before it joins: otherwise the first task of a build
        # waited for it (~0.2 s of CPU a worker, on the cores the build's tools want).
        nannies = [
            Nanny(scheduler, nthreads=jobs, resources={resource: jobs}, name=f"{name}-{os.getpid()}-{resource}",
                  local_directory=local_directory, host=host, preload=[TASK_CODE])
            for resource, jobs in ((FRAMEWORK, framework_jobs), (SKETCH, sketch_jobs))
        ]
        await asyncio.gather(*nannies)
        await asyncio.gather(*(nanny.finished() for nanny in nannies))

    asyncio.run(run())
