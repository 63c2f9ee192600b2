"""`fbuild-graph worker`: serve one runner's slots to a Dask scheduler.

One process, two workers: one offering `framework` slots, one offering `sketch` slots, each under a nanny
that restarts it if it dies (its lost tasks are recomputed). One worker per class for the same reason as
the local cluster: a worker only tries its top-priority resource-constrained task (distributed#6136).
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from typing import Optional

from .model import FRAMEWORK, SKETCH
from .runner import LOCAL_CLUSTER_CONFIG, check_address
from .transfer import MIRROR_ENV


def serve(scheduler: str, framework_jobs: int, sketch_jobs: int, local_directory: Optional[str] = None) -> None:
    import dask
    from distributed import Nanny

    check_address(scheduler, "SCHEDULER_ADDRESS")
    # What the local cluster turns off costs the same CPU here; work stealing stays on between runners.
    dask.config.set({k: v for k, v in LOCAL_CLUSTER_CONFIG.items() if "work-stealing" not in k})
    host = socket.gethostname()
    # Both workers of this runner (and their restarts) share one mirror of the clients' files.
    os.environ[MIRROR_ENV] = os.path.join(os.path.abspath(local_directory or tempfile.gettempdir()),
                                          "fbuild-graph-mirror")

    async def run() -> None:
        nannies = [
            Nanny(scheduler, nthreads=jobs, resources={name: jobs}, name=f"{host}-{os.getpid()}-{name}",
                  local_directory=local_directory)
            for name, jobs in ((FRAMEWORK, framework_jobs), (SKETCH, sketch_jobs))
        ]
        await asyncio.gather(*nannies)
        await asyncio.gather(*(nanny.finished() for nanny in nannies))

    asyncio.run(run())
