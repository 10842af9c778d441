"""A twin app's MQTT connection (coreMQTT over esp-tls in the real firmware), driven from
the app's own thread like coreMQTT's MQTT_ProcessLoop(): nothing runs behind the CPU's back,
so a power cut or reset stops it at once.

paho-mqtt speaks the protocol; this class adds what the chip imposes: the TLS identity
built into the firmware, a connection that dies with the chip (the socket is dropped, no
DISCONNECT is sent, as when the supply goes), and messages handed to the app in order.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from twin.config import MqttEndpoint
from twin.cpu import Cpu

POLL_S = 0.02
KEEPALIVE_S = 60  # ota_demo_core_mqtt.c: MQTT_KEEP_ALIVE_INTERVAL_SECONDS


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes


class LinkDown(Exception):
    """The broker connection is gone (the demo's MQTT_ProcessLoop returned an error)."""


class MqttLink:
    """One connection to the firmware's built-in broker endpoint."""

    def __init__(self, cpu: Cpu, endpoint: MqttEndpoint) -> None:
        self.cpu = cpu
        self.endpoint = endpoint
        self.inbox: deque[Message] = deque()
        self._client: mqtt.Client | None = None
        self._connected = False
        self._refused: str | None = None
        self._lost = False

    def _tls(self) -> ssl.SSLContext:
        pki = Path(self.endpoint.pki)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False  # esp-tls with skip_common_name: the broker is an IP address
        context.load_verify_locations(cafile=str(pki / "ca.pem"))
        thing = self.endpoint.thing
        context.load_cert_chain(str(pki / "things" / f"{thing}.pem"), str(pki / "things" / f"{thing}.key"))
        return context

    def connect(self, timeout_s: float = 5.0) -> str | None:
        """Open TLS + MQTT CONNECT (clean session); None when connected, else why not."""
        self.close()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.endpoint.thing, protocol=mqtt.MQTTv311,
            clean_session=True,
        )  # fmt: skip
        try:
            client.tls_set_context(self._tls())
        except (OSError, ssl.SSLError) as error:
            return f"TLS credentials: {error}"
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client, self._connected, self._refused, self._lost = client, False, None, False
        try:
            client.connect(self.endpoint.host, self.endpoint.port, keepalive=KEEPALIVE_S)
        except (OSError, ssl.SSLError) as error:
            self.close()
            return str(error) or type(error).__name__
        deadline = time.monotonic() + timeout_s
        while not self._connected and self.refusal() is None:
            if time.monotonic() > deadline:
                self.close()
                return "no CONNACK"
            try:
                self._loop()
            except LinkDown as error:
                self.close()
                return self.refusal() or str(error)
        reason = self.refusal()
        if reason is not None:
            self.close()
        return reason

    def refusal(self) -> str | None:
        """Why the broker refused the last CONNECT (set from paho's callback)."""
        return self._refused

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            self._refused = str(reason)
        else:
            self._connected = True

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, _r: object, _p: object) -> None:
        self._lost = self._connected
        self._connected = False

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        self.inbox.append(Message(message.topic, bytes(message.payload)))

    @property
    def up(self) -> bool:
        return self._client is not None and self._connected

    def _loop(self, timeout: float = POLL_S) -> None:
        """One MQTT_ProcessLoop pass; a chip that lost power or reset stops here."""
        self.cpu.check()
        client = self._client
        if client is None:
            raise LinkDown("not connected")
        try:
            code = client.loop(timeout=timeout)
        except (OSError, ssl.SSLError) as error:
            self._connected = False
            raise LinkDown(str(error)) from None
        self.cpu.check()
        if code != mqtt.MQTT_ERR_SUCCESS or self._lost:
            self._connected = False
            raise LinkDown(mqtt.error_string(code) if code != mqtt.MQTT_ERR_SUCCESS else "connection lost")

    def poll(self, timeout: float) -> Message | None:
        """The next message within `timeout` seconds; raises LinkDown when the link died."""
        deadline = time.monotonic() + timeout
        while not self.inbox:
            if not self.up:
                raise LinkDown("connection lost")
            self._loop(min(POLL_S, max(0.0, deadline - time.monotonic())))
            if time.monotonic() >= deadline:
                break
        return self.inbox.popleft() if self.inbox else None

    def subscribe(self, topic: str, qos: int = 1) -> None:
        client = self._require()
        client.subscribe(topic, qos=qos)
        self._loop(0)

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        client = self._require()
        info = client.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._connected = False
            raise LinkDown(mqtt.error_string(info.rc))
        self._loop(0)

    def _require(self) -> mqtt.Client:
        self.cpu.check()
        if self._client is None or not self._connected:
            raise LinkDown("not connected")
        return self._client

    def close(self) -> None:
        """Drop the connection the way a chip losing power does: the socket just goes."""
        client, self._client, self._connected = self._client, None, False
        if client is None:
            return
        sock = client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
