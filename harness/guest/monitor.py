"""QEMU's machine protocol (QMP) on an abstract unix socket: stopping an idle guest's virtual
CPU and clock, and starting them again.

An idle TCG guest still takes 2-9 % of a core for its timer ticks (arm64 the most); a test
suite keeps a few booted while it builds the next kernel. Stopped through QMP, QEMU stops the
guest's virtual clock with it: the guest sees no time pass, so nothing in it (RCU's stall
detector, the clocksource watchdog) reports the pause. A socket in the abstract namespace is
never a file (nothing written outside the cache) and has no path length to outgrow.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from typing import Any

from harness.base.errors import InfraError


def new_name() -> str:
    return f"ltoboot-qmp-{uuid.uuid4().hex}"


def argv(name: str) -> list[str]:
    """QEMU's options for a QMP server at abstract socket `name` that nobody need connect to."""
    return ["-chardev", f"socket,id=qmp,path={name},abstract=on,server=on,wait=off",
            "-mon", "chardev=qmp,mode=control"]


class Monitor:
    def __init__(self, name: str, timeout: float = 5.0) -> None:
        self.name, self.timeout = name, timeout
        self._sock: socket.socket | None = None
        self._buf = b""

    def _line(self) -> dict[str, Any]:
        assert self._sock is not None
        while b"\n" not in self._buf:
            data = self._sock.recv(65536)
            if not data:
                raise OSError("QEMU closed its monitor")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        got: dict[str, Any] = json.loads(line)
        return got

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        deadline = time.monotonic() + self.timeout
        while True:  # QEMU listens once it has parsed its options: at once, but not before
            try:
                sock.connect("\0" + self.name)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    sock.close()
                    raise
                time.sleep(0.02)
        self._sock = sock
        self._line()  # the greeting
        self._execute("qmp_capabilities")

    def _execute(self, command: str) -> None:
        assert self._sock is not None
        self._sock.sendall(json.dumps({"execute": command}).encode() + b"\n")
        while True:
            answer = self._line()
            if "return" in answer:
                return
            if "error" in answer:
                raise OSError(f"QMP {command}: {answer['error'].get('desc', answer)}")
            # an event ({"event": "STOP", ...}): not the answer

    def execute(self, command: str) -> None:
        """Run a QMP command without arguments ("stop", "cont"); a machine problem if QEMU
        does not answer."""
        try:
            if self._sock is None:
                self._connect()
            self._execute(command)
        except (OSError, ValueError) as e:
            self.close()
            raise InfraError(f"QEMU's monitor {self.name} did not answer {command!r}: {e}"
                             ) from None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf = b""
