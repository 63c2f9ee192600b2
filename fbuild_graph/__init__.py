"""fbuild-graph: build many Arduino sketches for one board, the shared framework once, on a Dask graph."""

__version__ = "0.1.0"
