"""The few OSC messages the scsynth benchmark exchanges, encoded by hand over UDP.

Only what talking to scsynth needs: int32, float32, string and blob arguments, one message per
datagram (no bundles). python-osc would do it too; it is not a project dependency, and these forty
lines are the whole protocol the benchmark uses.
"""

from __future__ import annotations

import socket
import struct
import time


def _padded(raw: bytes) -> bytes:
    return raw + b"\0" * (4 - len(raw) % 4)  # at least one NUL, to a multiple of 4


def encode(address: str, *args: int | float | str | bytes) -> bytes:
    """An OSC message: ints as ``i``, floats as ``f``, str as ``s``, bytes as ``b`` (blob)."""
    tags, data = ",", []
    for arg in args:
        if isinstance(arg, bool) or not isinstance(arg, int | float | str | bytes):
            raise TypeError(f"OSC argument of type {type(arg).__name__}")
        if isinstance(arg, int):
            tags += "i"
            data.append(struct.pack(">i", arg))
        elif isinstance(arg, float):
            tags += "f"
            data.append(struct.pack(">f", arg))
        elif isinstance(arg, str):
            tags += "s"
            data.append(_padded(arg.encode("utf-8")))
        else:
            tags += "b"
            blob = struct.pack(">i", len(arg)) + arg
            data.append(blob + b"\0" * (-len(blob) % 4))
    return _padded(address.encode("ascii")) + _padded(tags.encode("ascii")) + b"".join(data)


def decode(packet: bytes) -> tuple[str, list]:
    """(address, arguments) of an OSC message with i, f, d, h, s and b arguments."""
    def string_at(offset: int) -> tuple[str, int]:
        end = packet.index(b"\0", offset)
        return packet[offset:end].decode("utf-8", "replace"), (end // 4 + 1) * 4

    address, offset = string_at(0)
    tags, offset = string_at(offset) if offset < len(packet) else (",", offset)
    args: list = []
    for tag in tags[1:]:
        if tag in "if":
            args.append(struct.unpack_from(">i" if tag == "i" else ">f", packet, offset)[0])
            offset += 4
        elif tag in "dh":
            args.append(struct.unpack_from(">d" if tag == "d" else ">q", packet, offset)[0])
            offset += 8
        elif tag == "s":
            value, offset = string_at(offset)
            args.append(value)
        elif tag == "b":
            size = struct.unpack_from(">i", packet, offset)[0]
            args.append(packet[offset + 4:offset + 4 + size])
            offset += 4 + size + (-size % 4)
        else:
            raise ValueError(f"OSC type tag {tag!r} not understood")
    return address, args


class OscClient:
    """A UDP socket talking to one OSC server (replies come back to this socket)."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))

    def send(self, address: str, *args: int | float | str | bytes) -> None:
        self.sock.sendto(encode(address, *args), self.address)

    def wait_for(self, address: str, timeout: float) -> list:
        """Arguments of the next reply to ``address``, skipping others; TimeoutError when none
        comes. A ``/fail`` reply raises RuntimeError with the server's message."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                packet = self.sock.recv(65536)
            except TimeoutError:
                break
            reply, args = decode(packet)
            if reply == "/fail":
                raise RuntimeError(f"scsynth: {' '.join(map(str, args))}")
            if reply == address:
                return args
        raise TimeoutError(f"no {address} reply within {timeout:g} s")

    def close(self) -> None:
        self.sock.close()
