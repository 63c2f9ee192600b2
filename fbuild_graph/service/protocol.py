"""What a client and the service say to each other on the service's Unix socket: frames of one kind byte, a
4-byte big-endian length and the payload. Standard library only.

Client to service: one HELLO (JSON: `op` build, status or stop; `key`; for a build `argv`, `cwd`, `env`,
`umask`, `tty`, `columns`, `encoding`, `started`), then, during a build, INTERRUPT (Ctrl-C or SIGTERM on
the client; closing the socket means the same). Service to client: OUT and ERR (bytes for the client's
stdout and stderr, in its encoding), then one EXIT (JSON `code`); for status and stop one ANSWER (JSON).
"""

from __future__ import annotations

import json
import socket
import struct

HELLO, INTERRUPT, OUT, ERR, EXIT, ANSWER = b"H", b"I", b"O", b"E", b"X", b"A"
_HEADER = struct.Struct(">cI")
# A frame larger than this is a peer speaking another protocol, not a build's output.
MAX_FRAME = 64 << 20


class ProtocolError(Exception):
    """The peer closed the connection mid-frame or sent something that is not a frame."""


def send(sock: socket.socket, kind: bytes, payload: bytes = b"") -> None:
    sock.sendall(_HEADER.pack(kind, len(payload)) + payload)


def send_json(sock: socket.socket, kind: bytes, value: object) -> None:
    send(sock, kind, json.dumps(value).encode())


def receive(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """The next frame (kind, payload); None when the peer closed the connection between frames."""
    header = _exactly(sock, _HEADER.size, at_start=True)
    if header is None:
        return None
    kind, size = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ProtocolError(f"a frame of {size} bytes")
    return kind, _exactly(sock, size) if size else b""


def _exactly(sock: socket.socket, size: int, at_start: bool = False) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            if at_start and left == size:
                return None
            raise ProtocolError("the connection closed mid-frame")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
