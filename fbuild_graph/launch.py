"""The console entry (`fbuild-graph`, `python -m fbuild_graph`): a compile-many given --daemon (or
FBUILD_GRAPH_DAEMON=1) goes to the user's build service (service/client.py); anything else, or a build the
service cannot take, runs in this process through cli.py, as always. Until it knows which, only the
standard library and the service's client are imported: a build the service answers costs this process
its start and a socket.

`python -m fbuild_graph.launch serve FOLDER KEY` is the service process itself (the client starts it).
"""

from __future__ import annotations

import time

_STARTED = time.time()

import importlib  # noqa: E402  (the start above is the build's)
import os  # noqa: E402
import sys  # noqa: E402

from fbuild_graph.service import client  # noqa: E402


def run(started: float = _STARTED) -> None:
    """`started`: when the process began (an entry that imported more first passes its own start)."""
    argv = sys.argv[1:]
    if client.wanted(argv, os.environ):
        code = client.build(argv, started)
        if code is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    from fbuild_graph import cli

    cli.run_here(started)


def serve(folder: str, key: str) -> None:
    """The build service: the same code path as the command line (cli.main), with one Warm state kept
    between its builds; it exits when idle or asked to. Refuses to serve under a key that is not its own
    code's (the client computed the key from the files it found; this process imported the same files)."""
    from fbuild_graph import cli
    from fbuild_graph.build import Warm
    from fbuild_graph.service import place
    from fbuild_graph.service.server import Service, idle_seconds, settle

    own = place.key()
    if own != key:
        print(f"fbuild-graph service: asked to serve key {key}, but this code's key is {own}: exiting",
              file=sys.stderr, flush=True)
        os._exit(1)
    importlib.import_module("distributed")  # now, while stderr is the log: its log handlers keep the stream they find
    settle()

    warm = Warm()
    try:
        Service(place.Place(folder, key), lambda argv, started: cli.main(argv, started=started, warm=warm),
                idle_seconds()).serve()
    finally:
        warm.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # no interpreter teardown: the cluster's threads are closed, nothing else needs it


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"] and len(sys.argv) == 4:
        serve(sys.argv[2], sys.argv[3])
    else:
        run()
