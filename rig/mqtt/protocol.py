"""The AWS IoT Jobs + Streams wire format, as the AWS OTA library (ota-for-aws-iot-embedded-sdk
v3.4.1) speaks it: topics (source/ota_mqtt.c), CBOR stream messages (source/ota_cbor.c,
include/ota_cbor_private.h), the `afr_ota` job document (the job model in source/ota.c)
and the job status messages (ota_mqtt.c:buildStatusMessage*). Shared by the rig (the
service side) and the twin's AWS OTA agent (the device side), so both read one spec.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2

from rig.errors import InputError

CLIENT_TOKEN = "rdy"  # ota_mqtt.c: OTA_CLIENT_TOKEN, sent in every stream GET
LOG2_BLOCK_SIZE = 12  # ota_config_defaults.h: otaconfigLOG2_FILE_BLOCK_SIZE
BLOCK_SIZE = 1 << LOG2_BLOCK_SIZE
MAX_BITMAP_BYTES = 128  # OTA_MAX_BLOCK_BITMAP_SIZE: at most 1024 blocks per file
MIN_BLOCK_SIZE = 256  # AWS IoT Streams: the smallest block it serves
MAX_BLOCK_SIZE = 128 * 1024  # and the largest
SIGNATURE_KEY = "sig-sha256-ecdsa"  # the ESP32 PAL's OTA_JsonFileSignatureKey
JOB_PREFIX = "AFR_OTA-"


class ProtocolError(InputError):
    """A message that does not follow the Jobs/Streams format."""


class JobStatus(enum.Enum):
    """AWS IoT Jobs execution states the OTA library reports (ota_mqtt.c:pOtaJobStatusStrings),
    plus TIMED_OUT, which only the Jobs service sets: the execution's in-progress timer
    (a job's `timeoutConfig`) ran out before the device reported a terminal status."""

    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    CANCELED = "CANCELED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def terminal(self) -> bool:
        return self is not JobStatus.QUEUED and self is not JobStatus.IN_PROGRESS


# -- topics (ota_mqtt.c: pOta*TopicTemplate) ------------------------------------------------


def thing_prefix(thing: str) -> str:
    return f"$aws/things/{thing}"


def next_get(thing: str) -> str:
    return f"{thing_prefix(thing)}/jobs/$next/get"


def next_get_accepted(thing: str) -> str:
    return f"{next_get(thing)}/accepted"


def notify_next(thing: str) -> str:
    return f"{thing_prefix(thing)}/jobs/notify-next"


def job_update(thing: str, job_id: str) -> str:
    return f"{thing_prefix(thing)}/jobs/{job_id}/update"


def stream_get(thing: str, stream: str) -> str:
    return f"{thing_prefix(thing)}/streams/{stream}/get/cbor"


def stream_data(thing: str, stream: str) -> str:
    return f"{thing_prefix(thing)}/streams/{stream}/data/cbor"


def next_get_message(counter: int, thing: str) -> bytes:
    """ota_mqtt.c:pOtaGetNextJobMsgTemplate `{"clientToken":"%u:%s"}`."""
    return f'{{"clientToken":"{counter}:{thing}"}}'.encode()


# -- CBOR stream messages (ota_cbor.c) -----------------------------------------------------


@dataclass(frozen=True)
class BlockRequest:
    """OTA_CBOR_Encode_GetStreamRequestMessage: which blocks of which file the device wants."""

    file_id: int
    block_size: int
    offset: int  # first block the bitmap describes
    bitmap: bytes  # bit i set (LSB first within a byte): block offset+i is still wanted
    number_of_blocks: int  # how many blocks the service should send for this request
    client_token: str = CLIENT_TOKEN

    def encode(self) -> bytes:
        return bytes(cbor2.dumps({
            "c": self.client_token, "f": self.file_id, "l": self.block_size, "o": self.offset,
            "b": self.bitmap, "n": self.number_of_blocks,
        }))  # fmt: skip

    @classmethod
    def decode(cls, payload: bytes) -> BlockRequest:
        message = _cbor_map(payload, "stream request")
        return cls(
            file_id=_int(message, "f"), block_size=_int(message, "l"), offset=_int(message, "o"),
            bitmap=_bytes(message, "b"), number_of_blocks=_int(message, "n"),
            client_token=_text(message, "c"),
        )  # fmt: skip

    def wanted(self, total_blocks: int) -> list[int]:
        """Block ids the bitmap asks for, in order, within the file."""
        blocks = []
        for index in range(len(self.bitmap) * 8):
            block = self.offset + index
            if block >= total_blocks:
                break
            if self.bitmap[index >> 3] & (1 << (index & 7)):
                blocks.append(block)
        return blocks


@dataclass(frozen=True)
class DataBlock:
    """OTA_CBOR_Decode_GetStreamResponseMessage: one block of a file."""

    file_id: int
    block_id: int
    block_size: int
    payload: bytes

    def encode(self) -> bytes:
        return bytes(
            cbor2.dumps({"f": self.file_id, "i": self.block_id, "l": self.block_size, "p": self.payload})
        )

    @classmethod
    def decode(cls, payload: bytes) -> DataBlock:
        message = _cbor_map(payload, "stream data")
        return cls(_int(message, "f"), _int(message, "i"), _int(message, "l"), _bytes(message, "p"))


def _cbor_map(payload: bytes, what: str) -> Mapping[Any, Any]:
    try:
        message = cbor2.loads(payload)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError, RecursionError) as error:
        raise ProtocolError(f"{what}: not CBOR ({error})") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"{what}: a CBOR map is expected, not {type(message).__name__}")
    return message


def _int(message: Mapping[Any, Any], key: str) -> int:
    value = message.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(f"CBOR key {key!r} must be a non-negative integer")
    return value


def _bytes(message: Mapping[Any, Any], key: str) -> bytes:
    value = message.get(key)
    if not isinstance(value, bytes):
        raise ProtocolError(f"CBOR key {key!r} must be a byte string")
    return value


def _text(message: Mapping[Any, Any], key: str) -> str:
    value = message.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"CBOR key {key!r} must be a text string")
    return value


def block_count(size: int, block_size: int = BLOCK_SIZE) -> int:
    return -(-size // block_size)


def full_bitmap(blocks: int) -> bytearray:
    """ota.c:initializeBlockBitmap(): one bit per block, set = still wanted."""
    if blocks > MAX_BITMAP_BYTES * 8:
        raise ProtocolError(f"{blocks} blocks exceed the {MAX_BITMAP_BYTES}-byte block bitmap")
    bitmap = bytearray(b"\xff" * (blocks // 8))
    if blocks % 8:
        bitmap.append((1 << (blocks % 8)) - 1)
    return bitmap


# -- the job document (ota.c: otaJobDocModelParamStructure) --------------------------------


@dataclass(frozen=True)
class JobFile:
    """One entry of `afr_ota.files`; any field may be None to build a malformed document."""

    filepath: str | None
    filesize: int | None
    fileid: int | None
    certfile: str | None
    signature: bytes | None  # DER ECDSA signature, sent base64 under SIGNATURE_KEY
    file_type: int | None = 0  # configOTA_FIRMWARE_UPDATE_FILE_TYPE_ID

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {}
        for key, value in (
            ("filepath", self.filepath),
            ("filesize", self.filesize),
            ("fileid", self.fileid),
            ("certfile", self.certfile),
            ("fileType", self.file_type),
        ):
            if value is not None:
                entry[key] = value
        if self.signature is not None:
            entry[SIGNATURE_KEY] = base64.b64encode(self.signature).decode()
        return entry


def afr_ota(
    stream: str | None, files: list[JobFile], protocols: tuple[str, ...] = ("MQTT",)
) -> dict[str, Any]:
    """The `jobDocument` of an OTA job, as AWS IoT's CreateOTAUpdate writes it."""
    document: dict[str, Any] = {"protocols": list(protocols), "files": [f.to_json() for f in files]}
    if stream is not None:
        document["streamname"] = stream
    return {"afr_ota": document}


@dataclass(frozen=True)
class Execution:
    """A job execution as AWS IoT Jobs sends it in `$next/get/accepted` and `notify-next`."""

    job_id: str
    status: JobStatus
    status_details: Mapping[str, str]
    job_document: Mapping[str, Any]
    version_number: int
    execution_number: int = 1

    def to_json(self, now: int) -> dict[str, Any]:
        return {
            "jobId": self.job_id, "status": self.status.value, "statusDetails": dict(self.status_details),
            "queuedAt": now, "lastUpdatedAt": now, "versionNumber": self.version_number,
            "executionNumber": self.execution_number, "jobDocument": self.job_document,
        }  # fmt: skip


def next_job_message(execution: Execution | None, now: int, client_token: str | None = None) -> bytes:
    """`$next/get/accepted` (with the request's clientToken) or `notify-next`; no `execution`
    key when nothing is pending."""
    message: dict[str, Any] = {"timestamp": now}
    if client_token is not None:
        message["clientToken"] = client_token
    if execution is not None:
        message["execution"] = execution.to_json(now)
    return json.dumps(message, separators=(",", ":")).encode()


# -- job status updates (ota_mqtt.c: buildStatusMessage*) ---------------------------------


@dataclass(frozen=True)
class StatusUpdate:
    """`{"status": ..., "statusDetails": {...}}` published to `jobs/<jobId>/update`."""

    status: JobStatus
    details: Mapping[str, str]

    @classmethod
    def decode(cls, payload: bytes) -> StatusUpdate:
        try:
            message = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ProtocolError(f"job status update: not JSON ({error})") from None
        if not isinstance(message, dict):
            raise ProtocolError("job status update: a JSON object is expected")
        try:
            status = JobStatus(message.get("status"))
        except ValueError:
            raise ProtocolError(f"job status update: unknown status {message.get('status')!r}") from None
        details = message.get("statusDetails", {})
        if not isinstance(details, dict) or not all(isinstance(v, str) for v in details.values()):
            raise ProtocolError("job status update: statusDetails must map names to strings")
        return cls(status, {str(k): v for k, v in details.items()})

    def encode(self) -> bytes:
        """The library's exact text: no spaces, details in the order given."""
        details = ",".join(f'"{k}":"{v}"' for k, v in self.details.items())
        return f'{{"status":"{self.status.value}","statusDetails":{{{details}}}}}'.encode()


# -- AppVersion32 (include/ota_appversion32.h) ---------------------------------------------


def version32(version: str) -> int:
    """`major.minor.build` packed as AppVersion32 (major 8 bits, minor 8, build 16)."""
    parts = version.lstrip("v").split("-")[0].split(".")
    try:
        numbers = [int(p) for p in parts] + [0, 0, 0]
    except ValueError:
        raise InputError(f"version {version!r} is not major.minor.build") from None
    major, minor, build = numbers[:3]
    if major > 0xFF or minor > 0xFF or build > 0xFFFF:
        raise InputError(f"version {version!r} does not fit AppVersion32")
    return (major << 24) | (minor << 16) | build


def version_text(packed: int) -> str:
    return f"{packed >> 24 & 0xFF}.{packed >> 16 & 0xFF}.{packed & 0xFFFF}"


def decode_signature(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"{SIGNATURE_KEY} is not base64") from None
