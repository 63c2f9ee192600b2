"""The service process: listen on the user's socket, run one build at a time in the main thread with the
client's arguments, folder, environment and umask, its stdout and stderr streamed back as frames, and exit
after IDLE seconds without a build (FBUILD_GRAPH_DAEMON_IDLE, default 600), removing its socket.

A client's INTERRUPT, or its connection closing, interrupts the build as Ctrl-C does in a process of its own
(SIGINT to the main thread: the build keeps what finished and kills its tools); the service then serves the
next one. status and stop are answered at once, also during a build; stop lets the builds already accepted
finish first. What the build runs is `build(argv, started)`, given by launch.py: this module knows nothing of
compile-many.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Callable, Optional, Sequence

from fbuild_graph.service import protocol
from fbuild_graph.service.place import Place

IDLE_SECONDS = 600.0
INTERRUPTED = 130
FAILED_TO_RUN = 2
_STOP = None  # the queue's sentinel


def idle_seconds(env=os.environ) -> float:
    try:
        return max(0.0, float(env.get("FBUILD_GRAPH_DAEMON_IDLE", IDLE_SECONDS)))
    except ValueError:
        return IDLE_SECONDS


class FrameStream(io.TextIOBase):
    """sys.stdout or sys.stderr for the duration of one build: every write is a frame to the client, in its
    encoding. A client that left gets nothing (the build is being interrupted by then)."""

    def __init__(self, sock: socket.socket, kind: bytes, encoding: str, tty: bool, lock: threading.Lock):
        self._sock, self._kind, self._encoding, self._tty, self._lock = sock, kind, encoding, tty, lock

    @property
    def encoding(self) -> str:
        return self._encoding

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._tty

    def write(self, text: str) -> int:
        if text:
            with self._lock, contextlib.suppress(OSError):
                protocol.send(self._sock, self._kind, text.encode(self._encoding, "replace"))
        return len(text)


class Service:
    def __init__(self, place: Place, build: Callable[[Sequence[str], float], int], idle: float):
        self.place, self.build, self.idle = place, build, idle
        self.started = time.time()
        self.builds = 0
        self.building = False  # read by the SIGINT handler, which runs in the main thread as the build does
        self._state = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._listener: Optional[socket.socket] = None
        self._inode = 0
        self._main = threading.main_thread().ident

    def serve(self) -> None:
        """Until idle or stopped (`stop`, SIGTERM between builds). The socket is removed on the way out."""
        if not self._listen():
            return
        signal.signal(signal.SIGINT, self._on_interrupt)
        signal.signal(signal.SIGTERM, self._on_terminate)
        threading.Thread(target=self._accept, name="fbuild-graph-accept", daemon=True).start()
        self._log(f"serving {self.place.socket} (pid {os.getpid()}, idle exit after {self.idle:g} s)")
        last = time.monotonic()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=max(0.0, self.idle - (time.monotonic() - last)))
                except queue.Empty:
                    self._log(f"idle for {self.idle:g} s: exiting")
                    break
                if item is _STOP:
                    self._log("asked to stop: exiting")
                    break
                self._serve_build(*item)
                last = time.monotonic()
        except SystemExit:
            self._log("terminated: exiting")
        finally:
            self._close()
            self._drain()

    def _listen(self) -> bool:
        path = self.place.socket
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(path)
            self._log(f"another service answers on {path}: exiting")
            return False
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)  # a socket nobody answers on
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(16)
        self._listener, self._inode = listener, os.stat(path).st_ino
        return True

    def _close(self) -> None:
        """No new client: the socket goes (if it is still ours), then the listener."""
        with self._state:
            listener, self._listener = self._listener, None
        if listener is None:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.place.socket).st_ino == self._inode:
                os.remove(self.place.socket)
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()

    def _drain(self) -> None:
        """Builds accepted before the socket closed are still served."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                self._serve_build(*item)

    def _accept(self) -> None:
        while True:
            listener = self._listener
            if listener is None:
                return
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._greet, args=(conn,), name="fbuild-graph-greet", daemon=True).start()

    def _greet(self, conn: socket.socket) -> None:
        """The client's HELLO: status and stop are answered here, a build is queued for the main thread."""
        try:
            frame = protocol.receive(conn)
            hello = json.loads(frame[1]) if frame and frame[0] == protocol.HELLO else {}
        except (OSError, ValueError, protocol.ProtocolError):
            hello = {}
        op = hello.get("op") if hello.get("key") == self.place.key else None
        if op == "build":
            self._queue.put((conn, hello))
            return
        with conn, contextlib.suppress(OSError):
            if op == "status":
                protocol.send_json(conn, protocol.ANSWER, self.status())
            elif op == "stop":
                protocol.send_json(conn, protocol.ANSWER, {**self.status(), "stopping": True})
                self._close()
                self._queue.put(_STOP)

    def status(self) -> dict:
        return {"pid": os.getpid(), "key": self.place.key, "socket": self.place.socket,
                "uptime": round(time.time() - self.started, 1), "builds": self.builds, "busy": self.building,
                "idle_exit": self.idle, "log": self.place.log}

    def _serve_build(self, conn: socket.socket, hello: dict) -> None:
        start = time.time()
        lock = threading.Lock()
        encoding = hello.get("encoding") or "utf-8"
        out = FrameStream(conn, protocol.OUT, encoding, bool(hello.get("tty")), lock)
        err = FrameStream(conn, protocol.ERR, encoding, bool(hello.get("tty")), lock)
        stopped = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(conn, stopped), name="fbuild-graph-watch", daemon=True)
        code = FAILED_TO_RUN
        watcher.start()
        with conn:
            try:
                with _as_client(hello, out, err):
                    code = self._run(hello, stopped)
            except KeyboardInterrupt:  # a late one, as the build ended
                code = INTERRUPTED
            except OSError as exc:  # the client's folder is stopped, say
                err.write(f"fbuild-graph: error: the build service cannot take this build: {exc}\n")
            with lock, contextlib.suppress(OSError):
                protocol.send_json(conn, protocol.EXIT, {"code": code})
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        watcher.join()
        self.builds += 1
        self._log(f"build {self.builds}: {' '.join(hello.get('argv', []))} -> exit {code} in "
                  f"{time.time() - start:.3f} s")
        settle()


    def _run(self, hello: dict, stopped: threading.Event) -> int:
        """The build, in this (the main) thread, interruptible while it runs and only then; none for a client
        that already left."""
        with self._state:
            self.building = True
        try:
            if stopped.is_set():
                return INTERRUPTED
            return self.build(hello.get("argv", []), float(hello.get("started") or time.time()))
        except KeyboardInterrupt:  # before or after the build's own handling of it
            print("fbuild-graph: interrupted", file=sys.stderr)
            return INTERRUPTED
        except SystemExit as exc:  # argparse: --help, a usage error
            return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else FAILED_TO_RUN
        except Exception:
            traceback.print_exc(file=sys.__stderr__)
            print(f"fbuild-graph: error: the build service failed; see {self.place.log}", file=sys.stderr)
            return FAILED_TO_RUN
        finally:
            with self._state:
                self.building = False
            signal.signal(signal.SIGTERM, self._on_terminate)  # the build sets its own

    def _watch(self, conn: socket.socket, stopped: threading.Event) -> None:
        """The client's INTERRUPT, or its connection closing, interrupts the build (if it still runs)."""
        while True:
            try:
                frame = protocol.receive(conn)
            except (OSError, protocol.ProtocolError):
                frame = None
            if frame is None or frame[0] == protocol.INTERRUPT:
                with self._state:
                    stopped.set()
                    if self.building:
                        signal.pthread_kill(self._main, signal.SIGINT)
                if frame is None:
                    return

    def _on_interrupt(self, signum, frame) -> None:
        if self.building:
            raise KeyboardInterrupt

    def _on_terminate(self, signum, frame) -> None:
        raise SystemExit(0)

    def _log(self, line: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}", file=sys.__stderr__, flush=True)


@contextlib.contextmanager
def _as_client(hello: dict, out: FrameStream, err: FrameStream):
    """The client's folder, environment, umask and streams for the duration of its build, then ours again."""
    env, cwd, mask = dict(os.environ), os.getcwd(), os.umask(0o022)
    streams = sys.stdout, sys.stderr
    try:
        os.umask(int(hello.get("umask", mask)))
        os.environ.clear()
        os.environ.update(hello.get("env") or {})
        if hello.get("tty") and "COLUMNS" not in os.environ and hello.get("columns"):
            os.environ["COLUMNS"] = str(hello["columns"])
        os.chdir(hello.get("cwd") or "/")
        sys.stdout, sys.stderr = out, err
        yield
    finally:
        sys.stdout, sys.stderr = streams
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        os.umask(mask)


def settle() -> None:
    """Between builds, with the client answered: collect every cycle (frozen objects too), then freeze what
    is left. The collector then walks only what the next build allocates, not the ~100k objects of the
    imports and the cluster, which cost a build ~10 ms in full collections; nothing stays frozen past the
    next call, so no cycle is kept for longer than one build."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
