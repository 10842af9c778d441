"""The AWS IoT Jobs/Streams wire format as the AWS OTA library v3.4.1 reads and writes it."""

from __future__ import annotations

import json

import cbor2
import pytest

from rig.errors import InputError
from rig.mqtt import protocol as p


def test_topics_are_the_librarys() -> None:
    assert p.next_get("b1") == "$aws/things/b1/jobs/$next/get"
    assert p.next_get_accepted("b1") == "$aws/things/b1/jobs/$next/get/accepted"
    assert p.notify_next("b1") == "$aws/things/b1/jobs/notify-next"
    assert p.job_update("b1", "AFR_OTA-x") == "$aws/things/b1/jobs/AFR_OTA-x/update"
    assert p.stream_get("b1", "s") == "$aws/things/b1/streams/s/get/cbor"
    assert p.stream_data("b1", "s") == "$aws/things/b1/streams/s/data/cbor"
    assert p.next_get_message(3, "b1") == b'{"clientToken":"3:b1"}'


def test_block_request_uses_the_single_letter_cbor_keys() -> None:
    request = p.BlockRequest(file_id=0, block_size=4096, offset=0, bitmap=b"\x0f", number_of_blocks=1)
    assert cbor2.loads(request.encode()) == {"c": "rdy", "f": 0, "l": 4096, "o": 0, "b": b"\x0f", "n": 1}
    assert p.BlockRequest.decode(request.encode()) == request


def test_bitmap_bits_are_lsb_first_and_bounded_by_the_file() -> None:
    # bits 1 and 3 of byte 0, bit 0 of byte 1 (block 8); block 9 is past a 9-block file
    request = p.BlockRequest(0, 4096, 0, bytes([0b0000_1010, 0b0000_0011]), 1)
    assert request.wanted(total_blocks=9) == [1, 3, 8]
    assert p.BlockRequest(0, 4096, 16, b"\x01", 1).wanted(total_blocks=20) == [16]


def test_full_bitmap_sets_one_bit_per_block() -> None:
    assert bytes(p.full_bitmap(8)) == b"\xff"
    assert bytes(p.full_bitmap(10)) == b"\xff\x03"
    with pytest.raises(p.ProtocolError, match="1025 blocks"):
        p.full_bitmap(1025)


def test_data_block_round_trips() -> None:
    block = p.DataBlock(0, 7, 3, b"abc")
    assert cbor2.loads(block.encode()) == {"f": 0, "i": 7, "l": 3, "p": b"abc"}
    assert p.DataBlock.decode(block.encode()) == block


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff\xff", "not CBOR"),
        (cbor2.dumps([1, 2]), "a CBOR map"),
        (cbor2.dumps({"f": 0, "i": -1, "l": 3, "p": b"x"}), "'i' must be a non-negative integer"),
        (cbor2.dumps({"f": 0, "i": 1, "l": 3, "p": "text"}), "'p' must be a byte string"),
    ],
)
def test_malformed_stream_messages_are_protocol_errors(payload: bytes, message: str) -> None:
    with pytest.raises(p.ProtocolError, match=message):
        p.DataBlock.decode(payload)


def test_status_messages_match_the_librarys_text() -> None:
    receive = p.StatusUpdate(p.JobStatus.IN_PROGRESS, {"receive": "1/32"})
    assert receive.encode() == b'{"status":"IN_PROGRESS","statusDetails":{"receive":"1/32"}}'
    succeeded = p.StatusUpdate(p.JobStatus.SUCCEEDED, {"reason": "accepted  v1.1.0", "updatedBy": "  v1.0.0"})
    assert p.StatusUpdate.decode(succeeded.encode()) == succeeded


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{", "not JSON"),
        (b"[]", "a JSON object"),
        (b'{"status":"DONE"}', "unknown status"),
        (b'{"status":"FAILED","statusDetails":{"reason":1}}', "map names to strings"),
    ],
)
def test_malformed_status_updates_are_protocol_errors(payload: bytes, message: str) -> None:
    with pytest.raises(p.ProtocolError, match=message):
        p.StatusUpdate.decode(payload)


def test_job_document_is_afr_ota_with_a_base64_signature() -> None:
    entry = p.JobFile("/f.bin", 10, 0, "/c.pem", b"\x30\x01")
    document = p.afr_ota("stream-1", [entry])
    assert document == {"afr_ota": {"protocols": ["MQTT"], "streamname": "stream-1", "files": [
        {"filepath": "/f.bin", "filesize": 10, "fileid": 0, "certfile": "/c.pem", "fileType": 0,
         "sig-sha256-ecdsa": "MAE="}]}}  # fmt: skip
    missing = p.JobFile(None, 10, 0, None, None).to_json()
    assert "filepath" not in missing and p.SIGNATURE_KEY not in missing


def test_next_job_message_has_no_execution_when_nothing_is_pending() -> None:
    assert json.loads(p.next_job_message(None, 5, client_token="1:b1")) == {
        "timestamp": 5,
        "clientToken": "1:b1",
    }
    execution = p.Execution("AFR_OTA-1", p.JobStatus.QUEUED, {}, {"afr_ota": {}}, 1)
    sent = json.loads(p.next_job_message(execution, 5))["execution"]
    assert (
        sent["jobId"] == "AFR_OTA-1" and sent["status"] == "QUEUED" and sent["jobDocument"] == {"afr_ota": {}}
    )


def test_app_version32_packs_major_minor_build() -> None:
    assert p.version32("1.2.3") == 0x01020003
    assert p.version_text(0x01020003) == "1.2.3"
    assert p.version32("v2.3") == 0x02030000
    with pytest.raises(InputError):
        p.version32("1.2.70000")
