"""Execution: running a step's actions on a worker, the Dask client side, runners, cancellation, files between hosts, worker health."""
