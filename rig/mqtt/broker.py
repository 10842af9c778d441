"""The embedded broker: mosquitto (Debian's package), started by the rig with TLS and
client-certificate authentication, one config per run, its log kept with the run.

Every client must present a certificate from the farm's MQTT CA; its common name becomes
its user name (mosquitto's `use_identity_as_username`), as AWS IoT Core ties a connection
to the certificate's thing. The listener is the farm's address (loopback by default).
"""

from __future__ import annotations

import contextlib
import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from rig.errors import InfraError
from rig.mqtt.pki import MqttPki

START_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next(
        (str(p) for p in (Path("/usr/sbin/mosquitto"), Path("/usr/local/sbin/mosquitto")) if p.exists()), None
    )
    if found is None:
        raise InfraError("mosquitto is not installed (Debian package 'mosquitto'; ./dev installs it)")
    return found


class Mosquitto:
    """One mosquitto process listening on `host:port`; `restart()` keeps the port."""

    def __init__(self, pki: MqttPki, host: str, port: int, workdir: Path) -> None:
        self.pki = pki
        self.host = host
        self.port = port
        self.workdir = workdir
        self.log_path = workdir / "mosquitto.log"
        self.config_path = workdir / "mosquitto.conf"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _config(self) -> str:
        broker = self.pki.broker
        return "\n".join([
            "# Written by ota-rig for one run; see rig/mqtt/broker.py.",
            f"user {getpass.getuser()}",  # a root start would otherwise drop to 'mosquitto' and lose the keys
            "persistence false",
            "per_listener_settings false",
            "allow_anonymous false",
            f"log_dest file {self.log_path}",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "connection_messages true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            f"listener {self.port} {self.host}",
            f"cafile {self.pki.ca}",
            f"certfile {broker.cert}",
            f"keyfile {broker.key}",
            "require_certificate true",
            "use_identity_as_username true",
            "tls_version tlsv1.2",
            "",
        ])  # fmt: skip

    def start(self, timeout_s: float = START_TIMEOUT_S) -> float:
        """Start and wait until the port accepts; returns how long that took (seconds)."""
        binary = mosquitto_binary()
        _check_free(self.host, self.port)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._config(), encoding="utf-8")
        started = time.monotonic()
        self._process = subprocess.Popen(
            [binary, "-c", str(self.config_path)], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise InfraError(f"mosquitto on {self.host}:{self.port} exited at start: {self._why()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.2):
                if self._process.poll() is None:
                    return time.monotonic() - started
            time.sleep(0.005)
        self.stop()
        raise InfraError(f"mosquitto did not listen on {self.host}:{self.port} within {timeout_s:.0f} s")

    def _why(self) -> str:
        """The last thing mosquitto said: its stderr, else the last line of its log."""
        assert self._process is not None
        text = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
        if not text.strip() and self.log_path.exists():
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else "no message"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def restart(self) -> float:
        """A broker restart as a fault: every connection drops, the port comes back."""
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None


def _check_free(host: str, port: int) -> None:
    """Someone else on the port would answer the readiness probe for a mosquitto that failed."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise InfraError(f"mosquitto cannot listen on {host}:{port}: {error.strerror or error}") from None
