"""A virtual network PDU: switched 5 V outlets behind a plain HTTP interface.

It answers the requests of labgrid's `simplerest` power backend (labgrid 26.0,
labgrid/driver/power/simplerest.py `power_set()` / `power_get()`), which a place's
`NetworkPowerPort {model: simplerest, host: "http://…/outlet/{index}/{value}"}` drives:
`GET /outlet/<n>/<0|1>` switches outlet n, `GET /outlet/<n>` answers `1` or `0`.
Outlets start off, as a PDU's do after its own power-up; an unknown outlet is a 404,
which the backend's `raise_for_status()` turns into an error, as a real PDU's would.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from twin.power import USB_RAIL_VOLTS, PoweredDevice

_OUTLET_PATH = re.compile(r"^/outlet/(\d+)(?:/([01]))?/?$")


class VirtualPdu:
    """Outlets 0..n-1, each feeding at most one board."""

    def __init__(self, outlets: int) -> None:
        self._lock = threading.Lock()
        self._on = [False] * outlets
        self._devices: list[PoweredDevice | None] = [None] * outlets
        pdu = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                match = _OUTLET_PATH.match(self.path)
                if match is None or int(match.group(1)) >= outlets:
                    self.send_error(404, "no such outlet")
                    return
                outlet = int(match.group(1))
                if match.group(2) is not None:
                    pdu.switch(outlet, match.group(2) == "1")
                body = b"1" if pdu.is_on(outlet) else b"0"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Requests are not news; the lab log records switching."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="virtual-pdu", daemon=True)
        self._thread.start()

    @property
    def url_template(self) -> str:
        """The `host` of a simplerest NetworkPowerPort for this PDU."""
        return f"http://127.0.0.1:{self.port}/outlet/{{index}}/{{value}}"

    def attach(self, outlet: int, device: PoweredDevice) -> None:
        with self._lock:
            self._devices[outlet] = device

    def is_on(self, outlet: int) -> bool:
        with self._lock:
            return self._on[outlet]

    def switch(self, outlet: int, on: bool) -> None:
        with self._lock:
            self._on[outlet] = on
            device = self._devices[outlet]
        if device is not None:
            device.supply_changed(USB_RAIL_VOLTS if on else 0.0)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
