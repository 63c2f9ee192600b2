"""The client side of the build service: find the user's service for this package (start it when there is
none), hand it a build and relay what it says. Standard library only: this runs before anything heavy is
imported, and a build the service cannot take runs in this process instead (launch.py).

Starting is bounded (START_SECONDS): past it, or when the service cannot start at all, the caller builds in
process after one note on stderr. A socket nobody answers on (a service that died) is removed and a new
service started; racing clients start one service between them (the start lock). Ctrl-C or SIGTERM here
asks the service to interrupt the build, which then ends as an in-process build does (exit 130); a second
one leaves at once.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence

from fbuild_graph.service import place as places
from fbuild_graph.service import protocol
from fbuild_graph.service.place import Place, Unavailable

# How long a client waits for a service it started to answer before building in its own process.
START_SECONDS = float(os.environ.get("FBUILD_GRAPH_DAEMON_START", "5"))
ENV_SWITCH = "FBUILD_GRAPH_DAEMON"
FLAG = "--daemon"
INTERRUPTED = 130
CONNECTION_ERRORS = (FileNotFoundError, ConnectionRefusedError, ConnectionResetError, BrokenPipeError,
                     protocol.ProtocolError)


def wanted(argv: Sequence[str], env: Mapping[str, str]) -> bool:
    """A compile-many given --daemon, or FBUILD_GRAPH_DAEMON=1; never --help (argparse answers that here)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command != "compile-many" or any(a in ("-h", "--help") for a in argv):
        return False
    return FLAG in argv or env.get(ENV_SWITCH, "") not in ("", "0")


def build(argv: Sequence[str], started: float) -> int | None:
    """The build's exit code, from the service; None when the service cannot take it (a note said why)."""
    try:
        place = places.prepare(os.environ, places.key())
        sock = connect(place, start=True)
    except Unavailable as exc:
        _note(f"fbuild-graph: note: building in this process: {exc}")
        return None
    with sock:
        hello = {"op": "build", "key": place.key, "argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ),
                 "umask": _umask(), "tty": sys.stdout.isatty(), "started": started,
                 "columns": _columns(), "encoding": sys.stdout.encoding or "utf-8"}
        try:
            protocol.send_json(sock, protocol.HELLO, hello)
            return _relay(sock, place)
        except CONNECTION_ERRORS as exc:
            _note(f"fbuild-graph: error: the build service stopped answering ({exc or type(exc).__name__}); see "
                  f"{place.log}")
            return 2


def _relay(sock: socket.socket, place: Place) -> int:
    """Write what the service says until its exit code; Ctrl-C and SIGTERM are passed on as an interrupt."""
    asked = []

    def interrupt(signum, frame):
        if asked:  # a second one: stop waiting
            os._exit(INTERRUPTED)
        asked.append(signum)
        try:
            protocol.send(sock, protocol.INTERRUPT)
        except OSError:
            os._exit(INTERRUPTED)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            frame = protocol.receive(sock)
            if frame is None:
                raise protocol.ProtocolError("the service closed the connection before the build's end")
            kind, payload = frame
            if kind == protocol.EXIT:
                return int(json.loads(payload)["code"])
            stream = sys.stdout if kind == protocol.OUT else sys.stderr if kind == protocol.ERR else None
            if stream is not None:
                stream.flush()
                stream.buffer.write(payload)
                stream.buffer.flush()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def ask(op: str, env: Mapping[str, str] = os.environ) -> dict | None:
    """status or stop, to the running service of this package (none is started): its answer, or None."""
    place = places.prepare(env, places.key())
    try:
        sock = _dial(place.socket)
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    with sock:
        protocol.send_json(sock, protocol.HELLO, {"op": op, "key": place.key})
        frame = protocol.receive(sock)
    return json.loads(frame[1]) if frame and frame[0] == protocol.ANSWER else None


def connect(place: Place, start: bool) -> socket.socket:
    """A connection to the service of `place`; with `start`, one is started when none answers, waiting
    START_SECONDS at most (raises Unavailable past that)."""
    try:
        return _dial(place.socket)
    except (FileNotFoundError, ConnectionRefusedError):
        if not start:
            raise Unavailable("no build service is running") from None
    deadline = time.monotonic() + START_SECONDS
    with _start_lock(place, deadline):
        try:  # another client may have started it while we waited for the lock
            return _dial(place.socket)
        except FileNotFoundError:
            pass
        except ConnectionRefusedError:  # a socket nobody listens on: a service that died
            _remove(place.socket)
        service = _spawn(place)
        while time.monotonic() < deadline:
            try:
                return _dial(place.socket)
            except (FileNotFoundError, ConnectionRefusedError):
                if service.poll() is not None:
                    raise Unavailable(f"the build service exited at start (code {service.returncode}); see "
                                      f"{place.log}") from None
                time.sleep(0.01)
    raise Unavailable(f"the build service did not answer within {START_SECONDS:g} s; see {place.log}")


def _dial(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


class _start_lock:
    """The lock a client holds while it starts the service, so racing clients start one between them;
    waiting for it is bounded by the start deadline."""

    def __init__(self, place: Place, deadline: float):
        self.place, self.deadline = place, deadline

    def __enter__(self):
        try:
            self.fd = os.open(self.place.lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise Unavailable(f"cannot open {self.place.lock}: {exc.strerror}") from None
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= self.deadline:
                os.close(self.fd)
                raise Unavailable(f"another client holds {self.place.lock} and the service did not answer in time")
            time.sleep(0.01)

    def __exit__(self, *exc):
        os.close(self.fd)  # closing releases the flock


def _spawn(place: Place):
    """The service, detached: its own session, no terminal, its output to its log; it outlives us."""
    import subprocess

    try:
        log = os.open(place.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise Unavailable(f"cannot write the service log {place.log}: {exc.strerror}") from None
    try:
        return subprocess.Popen([sys.executable, "-m", "fbuild_graph.launch", "serve", place.folder, place.key],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                cwd="/", close_fds=True)
    except OSError as exc:
        raise Unavailable(f"cannot start the build service: {exc.strerror}") from None
    finally:
        os.close(log)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _columns() -> int:
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        return 0


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _note(line: str) -> None:
    sys.stdout.flush()
    print(line, file=sys.stderr, flush=True)
