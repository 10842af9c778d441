"""Build the modem-line shim and receive the DTR/RTS states it sends for one pty."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

from rig.errors import InfraError
from twin.autoreset import DevKitAutoReset

SHIM_SOURCE = Path(__file__).with_name("modem_lines.c")
# Where the shim sends; the twin binds one socket per pty in this directory.
MODEM_DIR_ENV = "TWIN_MODEM_DIR"


def modem_shim(cache: Path | None = None) -> Path:
    """The shim as a shared library, compiled once per source version (gcc, as the host
    tools of `./dev test` provide)."""
    source = SHIM_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    directory = cache or Path(tempfile.gettempdir()) / "ota-rig-twin"
    library = directory / f"modem_lines-{digest}.so"
    if library.exists():
        return library
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise InfraError("building the twin's USB-UART modem-line shim needs gcc (apt install gcc)")
    directory.mkdir(parents=True, exist_ok=True)
    partial = library.with_name(f".{library.name}.{os.getpid()}")
    build = subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(partial), str(SHIM_SOURCE), "-ldl"],
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0:
        raise InfraError(f"building {SHIM_SOURCE.name} failed: {build.stderr.strip().splitlines()[-1:]}")
    os.replace(partial, library)
    return library


class ModemLineSocket:
    """DTR/RTS of one pty, as the shim in the program holding its slave reports them."""

    def __init__(self, directory: Path, pty_path: str, lines: DevKitAutoReset) -> None:
        self.path = directory / f"pts-{pty_path.rsplit('/', 1)[-1]}"
        self._lines = lines
        directory.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.path))
        self._thread = threading.Thread(target=self._run, name="twin-modem-lines", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                message = self._sock.recv(16)
            except OSError:
                return
            if not message:
                return
            if len(message) == 2 and set(message) <= set(b"01"):
                self._lines.set_lines(dtr=message[0] == ord("1"), rts=message[1] == ord("1"))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)
