"""The rig as AWS IoT Jobs + Streams for one thing: it queues OTA jobs, answers `$next/get`,
pushes `notify-next`, records every status update the device publishes, and streams the
file in CBOR blocks on request — with the stream faults a scenario asks for.

It is an ordinary MQTT client (paho-mqtt) of whatever broker the farm names, so the same
code drives the embedded mosquitto and a site broker that copies the Jobs/Streams API.
Job executions follow AWS IoT Jobs' rules: the next execution is the oldest QUEUED or
IN_PROGRESS one; a terminal status ends it and `notify-next` announces the next.
"""

from __future__ import annotations

import itertools
import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from rig.cutspec import MqttAction
from rig.errors import InfraError
from rig.mqtt import protocol as p
from rig.mqtt.pki import Identity

CONNECT_TIMEOUT_S = 5.0
# The most blocks one request is answered with, whatever its `n` says: a malformed request
# must not make the rig push a whole file at once (the library asks for 1 by default).
MAX_BLOCKS_PER_REQUEST = 32


@dataclass(frozen=True)
class StreamFault:
    """An `mqtt@…` cut bound to the block it acts at."""

    kind: MqttAction
    block: int | None  # acts when this block is about to be sent ...
    fraction: float | None = None  # ... or the first block at this fraction of the file or later
    seconds: float | None = None  # STALL and OUTAGE: how long (STALL None: for good)

    def due(self, block: int, total_blocks: int) -> bool:
        if self.block is not None:
            return block == self.block
        return self.fraction is not None and block >= int(self.fraction * total_blocks)


@dataclass
class Job:
    """One job execution for the thing."""

    job_id: str
    stream: str
    data: bytes
    document: dict[str, object]
    block_size: int
    status: p.JobStatus = p.JobStatus.QUEUED
    details: dict[str, str] = field(default_factory=dict)
    version: int = 1
    updates: list[tuple[float, p.StatusUpdate]] = field(default_factory=list)
    blocks_sent: int = 0
    bytes_sent: int = 0

    @property
    def total_blocks(self) -> int:
        return p.block_count(len(self.data), self.block_size)

    def execution(self) -> p.Execution:
        return p.Execution(self.job_id, self.status, dict(self.details), self.document, self.version)


@dataclass(frozen=True)
class Progress:
    """What the device has written, as its block bitmap shows (blocks no longer asked for)."""

    job_id: str
    blocks_done: int
    total_blocks: int
    bytes_done: int
    size: int


class JobsService:
    """Jobs + Streams for one thing on one broker connection."""

    def __init__(
        self, host: str, port: int, ca: str, identity: Identity, thing: str, *,
        client_id: str | None = None,
    ) -> None:  # fmt: skip
        self.host, self.port, self.thing = host, port, thing
        self._ca, self._identity = ca, identity
        self._lock = threading.Condition()
        self.jobs: list[Job] = []
        self._counter = itertools.count(1)
        self.requests_seen = 0  # `$next/get` requests: the device is online and asking
        self.request_times: list[float] = []
        self.errors: list[str] = []  # malformed device messages, one line each
        self.faults: list[StreamFault] = []
        self.fired: list[tuple[float, StreamFault]] = []
        self._stalled_until = 0.0
        self._held: dict[str, p.DataBlock] = {}
        self.on_progress: Callable[[Progress], None] | None = None
        self.on_fault: Callable[[StreamFault], None] | None = None
        self._client = self._make_client(client_id or f"ota-rig-jobs-{thing}")
        self._connected = threading.Event()

    # -- connection ---------------------------------------------------------------------

    def _tls(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_verify_locations(cafile=self._ca)
            context.load_cert_chain(str(self._identity.cert), str(self._identity.key))
        except (OSError, ssl.SSLError) as error:
            raise InfraError(f"MQTT service identity {self._identity.cert}: {error}") from None
        return context

    def _make_client(self, client_id: str) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        client.tls_set_context(self._tls())
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=1)
        return client

    def start(self) -> None:
        try:
            self._client.connect(self.host, self.port, keepalive=30)
        except (OSError, ssl.SSLError) as error:
            raise InfraError(f"MQTT broker {self.host}:{self.port}: {error}") from None
        self._client.loop_start()
        if not self._connected.wait(CONNECT_TIMEOUT_S):
            self.stop()
            raise InfraError(f"MQTT broker {self.host}:{self.port} did not accept the rig's service client")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            return
        prefix = p.thing_prefix(self.thing)
        for topic in (p.next_get(self.thing), f"{prefix}/jobs/+/update", f"{prefix}/streams/+/get/cbor"):
            client.subscribe(topic, qos=1)
        self._connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, _r: object, _p: object) -> None:
        self._connected.clear()

    # -- jobs -------------------------------------------------------------------------------

    def create_job(self, data: bytes, files: list[p.JobFile], *, block_size: int = p.BLOCK_SIZE,
                   stream: str | None = None, notify: bool = True) -> Job:  # fmt: skip
        """Queue an OTA job for `data`; announce it with notify-next when it is the next one."""
        number = next(self._counter)
        job = Job(
            job_id=f"{p.JOB_PREFIX}rig-{int(time.time())}-{number}",
            stream=stream if stream is not None else f"rig-stream-{number}",
            data=data, document=p.afr_ota(stream if stream is not None else f"rig-stream-{number}", files),
            block_size=block_size,
        )  # fmt: skip
        with self._lock:
            self.jobs.append(job)
            first = self._next() is job
        if notify and first:
            self._notify()
        return job

    def cancel(self, job: Job) -> None:
        """CancelJob: the execution ends CANCELED and the device hears of the next one."""
        self._end(job, p.JobStatus.CANCELED)

    def time_out(self, job: Job) -> None:
        """The execution's in-progress timer ran out: it ends TIMED_OUT (a status the device
        can no longer change) and the device hears of the next one, as after a cancel."""
        self._end(job, p.JobStatus.TIMED_OUT)

    def _end(self, job: Job, status: p.JobStatus) -> None:
        with self._lock:
            if job.status.terminal:
                return
            job.status = status
            job.version += 1
            self._lock.notify_all()
        self._notify()

    def _next(self) -> Job | None:
        return next((j for j in self.jobs if not j.status.terminal), None)

    def _notify(self) -> None:
        with self._lock:
            job = self._next()
        message = p.next_job_message(job.execution() if job else None, int(time.time()))
        self._client.publish(p.notify_next(self.thing), message, qos=1)

    def wait_status(self, job: Job, done: Callable[[Job], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not done(job):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.1))
            return True

    def wait_requests(self, count: int, timeout: float) -> bool:
        """Until the device has asked for its next job `count` times in all (it is online)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.requests_seen < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.1))
            return True

    # -- messages from the device -------------------------------------------------------------

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        topic, payload = message.topic, bytes(message.payload)
        try:
            if topic == p.next_get(self.thing):
                self._answer_next(payload)
            elif topic.endswith("/update") and "/jobs/" in topic:
                self._status(topic.split("/jobs/", 1)[1].rsplit("/update", 1)[0], payload)
            elif topic.endswith("/get/cbor"):
                self._serve(topic.split("/streams/", 1)[1].rsplit("/get/cbor", 1)[0], payload)
        except p.ProtocolError as error:
            with self._lock:
                self.errors.append(f"{topic}: {error}")

    def _answer_next(self, payload: bytes) -> None:
        try:
            token = json.loads(payload).get("clientToken")
        except (ValueError, AttributeError):
            token = None
        with self._lock:
            self.requests_seen += 1
            self.request_times.append(time.monotonic())
            job = self._next()
            self._lock.notify_all()
        reply = p.next_job_message(job.execution() if job else None, int(time.time()), client_token=token)
        self._client.publish(p.next_get_accepted(self.thing), reply, qos=1)

    def _status(self, job_id: str, payload: bytes) -> None:
        update = p.StatusUpdate.decode(payload)
        announce = False
        with self._lock:
            job = next((j for j in self.jobs if j.job_id == job_id), None)
            if job is None:
                raise p.ProtocolError(f"status for unknown job {job_id}")
            job.updates.append((time.monotonic(), update))
            if not job.status.terminal:
                job.status = update.status
                job.details = dict(update.details)
                job.version += 1
                announce = job.status.terminal
            self._lock.notify_all()
        if announce:
            self._notify()

    def _serve(self, stream: str, payload: bytes) -> None:
        """A GetStream request: up to `n` of the wanted blocks, in the device's block size
        (AWS IoT Streams serves 256 B to 128 KiB blocks)."""
        request = p.BlockRequest.decode(payload)
        with self._lock:
            job = next((j for j in self.jobs if j.stream == stream and not j.status.terminal), None)
        if job is None:
            return  # AWS answers an unknown stream on the rejected topic, which the library ignores
        if request.file_id != 0 or not p.MIN_BLOCK_SIZE <= request.block_size <= p.MAX_BLOCK_SIZE:
            raise p.ProtocolError(
                f"block request for file {request.file_id}, {request.block_size}-byte blocks"
            )
        job.block_size = request.block_size
        wanted = request.wanted(job.total_blocks)
        self._report(job, wanted)
        if time.monotonic() < self._stalled_until:
            return
        for block in wanted[: min(request.number_of_blocks, MAX_BLOCKS_PER_REQUEST)]:
            if not self._send_block(job, block, wanted):
                return

    def _report(self, job: Job, wanted: list[int]) -> None:
        if self.on_progress is None or not wanted:
            return
        done = job.total_blocks - len(wanted)
        written = min(done * job.block_size, len(job.data))
        self.on_progress(Progress(job.job_id, done, job.total_blocks, written,
                                  len(job.data)))  # fmt: skip

    def _block(self, job: Job, block: int) -> p.DataBlock:
        chunk = job.data[block * job.block_size : (block + 1) * job.block_size]
        return p.DataBlock(0, block, len(chunk), chunk)

    def _send_block(self, job: Job, block: int, wanted: list[int]) -> bool:
        """Send one block, applying a fault armed for it; False when the fault ends this answer."""
        fault = next((f for f in self.faults if f.due(block, job.total_blocks)), None)
        data = self._block(job, block)
        if fault is not None:
            self.faults.remove(fault)
            self.fired.append((time.monotonic(), fault))
            if self.on_fault is not None:
                self.on_fault(fault)
            kind = fault.kind
            if kind is MqttAction.DROP:
                return False
            if kind is MqttAction.STALL:
                self._stalled_until = time.monotonic() + (fault.seconds if fault.seconds is not None else 1e9)
                return False
            if kind is MqttAction.CORRUPT:
                payload = bytearray(data.payload)
                payload[len(payload) // 2] ^= 0xFF
                data = p.DataBlock(data.file_id, data.block_id, data.block_size, bytes(payload))
            if kind is MqttAction.REORDER:
                later = next((b for b in wanted if b > block), None)
                if later is not None:
                    self._publish_block(job, self._block(job, later))
            if kind is MqttAction.DUPLICATE:
                self._publish_block(job, data)
            if kind in (MqttAction.KICK, MqttAction.CANCEL, MqttAction.RESTART):
                return False  # carried out by the session (on_fault), which owns the broker
        self._publish_block(job, data)
        return True

    def _publish_block(self, job: Job, block: p.DataBlock) -> None:
        job.blocks_sent += 1
        job.bytes_sent += len(block.payload)
        self._client.publish(p.stream_data(self.thing, job.stream), block.encode(), qos=0)

    def unstall(self) -> None:
        self._stalled_until = 0.0


def kick(host: str, port: int, ca: str, identity: Identity, client_id: str, timeout: float = 5.0) -> None:
    """Take over `client_id` on the broker (MQTT 3.1.1 §3.1.4: the server disconnects the
    existing client with that id), then leave: how AWS's DisconnectResume test knocks a
    device off."""
    connected = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=ca)
    context.load_cert_chain(str(identity.cert), str(identity.key))
    client.tls_set_context(context)
    client.on_connect = lambda *_: connected.set()
    try:
        client.connect(host, port, keepalive=10)
    except (OSError, ssl.SSLError) as error:
        raise InfraError(f"MQTT broker {host}:{port}: {error}") from None
    client.loop_start()
    try:
        if not connected.wait(timeout):
            raise InfraError(f"MQTT broker {host}:{port}: the kick connection was not accepted")
    finally:
        client.disconnect()
        client.loop_stop()
