"""The embedded mosquitto and the rig's Jobs + Streams service, driven by a plain paho client
playing the device: what an AWS OTA agent sends, the service must answer as AWS IoT does."""

from __future__ import annotations

import queue
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from rig.cutspec import MqttAction
from rig.errors import InfraError
from rig.mqtt import protocol as p
from rig.mqtt.broker import Mosquitto
from rig.mqtt.pki import Identity, MqttPki, ensure_pki, make_untrusted_codesign
from rig.mqtt.service import JobsService, StreamFault, kick
from rig.net.listener import free_port

THING = "dev1"


class Device:
    """A paho client with the thing's certificate: what the AWS OTA agent publishes."""

    def __init__(self, pki: MqttPki, port: int, identity: Identity | None = None) -> None:
        self.inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.disconnected = False
        self.refused: str | None = None
        identity = identity or pki.thing(THING)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.load_verify_locations(cafile=str(pki.ca))
        context.load_cert_chain(str(identity.cert), str(identity.key))
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=THING, protocol=mqtt.MQTTv311)
        self.client.tls_set_context(context)
        self.client.on_message = lambda _c, _u, m: self.inbox.put((m.topic, bytes(m.payload)))
        self.client.on_disconnect = lambda *_: setattr(self, "disconnected", True)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        data = f"$aws/things/{THING}/streams/+/data/cbor"
        for topic in (p.notify_next(THING), p.next_get_accepted(THING), data):
            self.client.subscribe(topic, qos=1)
        time.sleep(0.2)

    def get(self, timeout: float = 5.0) -> tuple[str, bytes]:
        return self.inbox.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def pki(tmp_path: Path) -> MqttPki:
    return ensure_pki(tmp_path / "pki", [THING])


@pytest.fixture
def broker(pki: MqttPki, tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(pki, "127.0.0.1", free_port("127.0.0.1"), tmp_path / "broker") as running:
        yield running


@pytest.fixture
def service(broker: Mosquitto, pki: MqttPki) -> Iterator[JobsService]:
    jobs = JobsService("127.0.0.1", broker.port, str(pki.ca), pki.service, THING)
    jobs.start()
    yield jobs
    jobs.stop()


def _job_file(data: bytes) -> p.JobFile:
    return p.JobFile("/f.bin", len(data), 0, "/c.pem", b"\x30\x00")


def test_a_device_gets_its_job_its_blocks_and_its_statuses_are_kept(service: JobsService, pki: MqttPki,
                                                                      broker: Mosquitto) -> None:  # fmt: skip
    device = Device(pki, broker.port)
    data = bytes(range(256)) * 40  # 10240 bytes: blocks of 4096, 4096, 2048
    job = service.create_job(data, [_job_file(data)])
    topic, payload = device.get()
    assert topic == p.notify_next(THING)
    execution = json_execution(payload)
    assert execution["jobId"] == job.job_id
    assert execution["jobDocument"]["afr_ota"]["streamname"] == job.stream  # type: ignore[index]
    device.client.publish(p.next_get(THING), p.next_get_message(1, THING), qos=1)
    topic, payload = device.get()
    assert topic == p.next_get_accepted(THING) and json_execution(payload)["jobId"] == job.job_id
    request = p.BlockRequest(0, 4096, 0, bytes(p.full_bitmap(3)), 3)
    device.client.publish(p.stream_get(THING, job.stream), request.encode())
    blocks = [p.DataBlock.decode(device.get()[1]) for _ in range(3)]
    assert b"".join(b.payload for b in sorted(blocks, key=lambda b: b.block_id)) == data
    update = p.StatusUpdate(p.JobStatus.SUCCEEDED, {"reason": "accepted  v1.1.0"})
    device.client.publish(p.job_update(THING, job.job_id), update.encode(), qos=1)
    assert service.wait_status(job, lambda j: j.status is p.JobStatus.SUCCEEDED, 5.0)
    topic, payload = device.get()  # the next job (none) is announced
    assert topic == p.notify_next(THING) and "execution" not in payload.decode()
    device.close()


def test_stream_faults_act_at_their_block(service: JobsService, pki: MqttPki, broker: Mosquitto) -> None:
    device = Device(pki, broker.port)
    data = bytes(3 * 4096)
    job = service.create_job(data, [_job_file(data)])
    device.get()
    service.faults += [StreamFault(MqttAction.DROP, 0), StreamFault(MqttAction.CORRUPT, 1)]
    for block in range(2):
        bitmap = bytearray(1)
        bitmap[0] = 1 << block
        request = p.BlockRequest(0, 4096, 0, bytes(bitmap), 1)
        device.client.publish(p.stream_get(THING, job.stream), request.encode())
    received = p.DataBlock.decode(device.get()[1])
    assert received.block_id == 1 and received.payload != data[4096:8192]  # 0 dropped, 1 corrupted
    with pytest.raises(queue.Empty):
        device.get(timeout=0.3)
    assert [f.kind for _, f in service.fired] == [MqttAction.DROP, MqttAction.CORRUPT]
    device.close()


def test_a_kick_takes_over_the_client_id(broker: Mosquitto, pki: MqttPki) -> None:
    device = Device(pki, broker.port)
    kick("127.0.0.1", broker.port, str(pki.ca), pki.service, THING)
    deadline = time.monotonic() + 5
    while not device.disconnected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert device.disconnected
    device.close()


def test_the_broker_refuses_a_certificate_from_another_ca(
    broker: Mosquitto, pki: MqttPki, tmp_path: Path
) -> None:
    stranger = make_untrusted_codesign(tmp_path / "stranger")  # a cert the farm's CA never signed
    try:
        device = Device(pki, broker.port, identity=stranger)
    except (ssl.SSLError, OSError):
        return  # refused during the handshake
    time.sleep(0.5)
    assert not device.client.is_connected()
    device.close()


def test_a_service_that_cannot_authenticate_is_an_infra_error(broker: Mosquitto, pki: MqttPki,
                                                              tmp_path: Path) -> None:  # fmt: skip
    stranger = make_untrusted_codesign(tmp_path / "stranger")
    with pytest.raises(InfraError, match=r"MQTT broker 127\.0\.0\.1"):
        JobsService("127.0.0.1", broker.port, str(pki.ca), stranger, THING).start()


def test_a_busy_port_is_an_infra_error_with_mosquittos_reason(pki: MqttPki, broker: Mosquitto,
                                                              tmp_path: Path) -> None:  # fmt: skip
    with pytest.raises(InfraError, match=rf"mosquitto cannot listen on 127\.0\.0\.1:{broker.port}: Address"):
        Mosquitto(pki, "127.0.0.1", broker.port, tmp_path / "second").start()


def json_execution(payload: bytes) -> dict[str, object]:
    import json

    execution = json.loads(payload)["execution"]
    assert isinstance(execution, dict)
    return execution


def test_a_timed_out_job_is_withdrawn_and_stays_timed_out(service: JobsService, pki: MqttPki,
                                                          broker: Mosquitto) -> None:  # fmt: skip
    """AWS IoT `timeoutConfig`: the execution ends TIMED_OUT, the device hears of no job, and a
    status it sends afterwards changes nothing."""
    device = Device(pki, broker.port)
    data = bytes(4096)
    job = service.create_job(data, [_job_file(data)])
    assert json_execution(device.get()[1])["jobId"] == job.job_id
    service.time_out(job)
    topic, payload = device.get()
    assert topic == p.notify_next(THING) and "execution" not in payload.decode()
    late = p.StatusUpdate(p.JobStatus.SUCCEEDED, {"reason": "accepted  v1.1.0"})
    device.client.publish(p.job_update(THING, job.job_id), late.encode(), qos=1)
    assert service.wait_status(job, lambda j: len(j.updates) == 1, 5.0)
    assert job.status is p.JobStatus.TIMED_OUT and job.status.terminal
    device.close()
