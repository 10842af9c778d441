"""esp_https_ota details that change outcomes, each against the ESP-IDF v5.5.5 function it
follows (components/esp_https_ota/src/esp_https_ota.c unless named otherwise)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from rig.esp.image import patch_image
from rig.esp.marker import Behaviour
from rig.esp.testimage import make_test_app
from rig.net.faults import Counting, Cut, Position, Teardown
from rig.net.proxy import FaultProxy
from twin.flash import OpKind

from .conftest import Lab, Served, start_ota

MakeLab = Callable[..., Lab]
OTA_1 = 0x1D0000
SLOT = 1700 * 1024


@pytest.fixture
def proxy(served: Served) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(("127.0.0.1", served.server.port)).start()
    yield fault_proxy
    fault_proxy.stop()


def _partial(lab: Lab, size: int = 32768) -> None:
    c = lab.console
    c.expect(r"rig_agent: ready version=1\.0\.0")
    c.send(f"ota-config request_size={size}")
    c.expect(rf"rig_agent: ok ota-config .*request_size={size} ")


def test_partial_download_reuses_the_kept_alive_connection_between_ranges(
    make_lab: MakeLab, served: Served
) -> None:
    """esp_https_ota_perform() closes between ranges only when the server does not keep the
    connection alive (esp_http_client_is_persistent_connection()); esp_http_client_open()
    then reuses the connected transport."""
    served.images["next.bin"] = make_test_app(version="1.0.1", size=88 * 1024)
    lab = make_lab()
    _partial(lab)
    start_ota(lab, served, "next.bin", wait_ready=False)
    lab.console.expect(r"rig_agent: ready version=1\.0\.1 running=ota_1 state=VALID$")
    gets = [r for r in served.server.records if r.method == "GET"]
    assert [r.range_header for r in gets] == ["bytes=0-32767", "bytes=32768-65535", "bytes=65536-"]
    assert len({r.connection_id for r in gets}) == 1


def test_a_fin_in_the_middle_of_a_range_fails_the_partial_download(
    make_lab: MakeLab, served: Served, proxy: FaultProxy
) -> None:
    """A read of 0 bytes before the range's Content-Length is `Connection closed before
    complete data was received!` and ESP_FAIL (esp_https_ota_perform()); the next range is
    never asked for, and the agent reports the failed download."""
    served.images["next.bin"] = make_test_app(version="1.0.1", size=88 * 1024)
    proxy.arm(Cut(at=Position(Counting.WIRE, 45_000), teardown=Teardown.FIN))  # inside the second range
    lab = make_lab()
    _partial(lab)
    start_ota(lab, served, "next.bin", port=proxy.port, wait_ready=False)
    c = lab.console
    c.expect(r"^E \(\d+\) esp_https_ota: Connection closed before complete data was received!$")
    c.expect(r"rig_agent: ota failed err=0xffffffff reason=download$")
    assert [r.range_header for r in served.server.records if r.method == "GET"] == [
        "bytes=0-32767", "bytes=32768-65535"]


def test_esp_ota_begin_runs_before_the_chip_checks(make_lab: MakeLab, served: Served) -> None:
    """The first esp_https_ota_perform() calls esp_ota_begin() before esp_ota_verify_chip_id():
    a running app still PENDING_VERIFY refuses even a wrong-chip image with 0x1506, not with
    the chip mismatch."""
    pending = patch_image(make_test_app(version="1.0.1"), behaviour=Behaviour.NEVER_CONFIRM)
    served.images["pending.bin"] = pending
    served.images["other_chip.bin"] = patch_image(make_test_app(version="1.0.2"), chip_id=0xFE00)
    lab = make_lab()
    start_ota(lab, served, "pending.bin")
    c = lab.console
    c.expect(r"rig_agent: ready version=1\.0\.1 running=ota_1 state=PENDING_VERIFY$")
    mark = len(c.log_lines())
    start_ota(lab, served, "other_chip.bin", wait_ready=False)
    c.expect(r"rig_agent: ota failed err=0x1506 reason=download$")
    lines = c.log_lines(mark)
    assert "E esp_ota_ops: Running app has not confirmed state (ESP_OTA_IMG_PENDING_VERIFY)" in lines
    assert "E esp_https_ota: esp_ota_begin failed (ESP_ERR_OTA_ROLLBACK_INVALID_STATE)" in lines
    assert not any("Mismatch chip id" in line for line in lines)


def test_a_bad_first_byte_costs_the_slot_its_first_sector(make_lab: MakeLab, served: Served) -> None:
    """esp_ota_ops.c:esp_ota_write() erases the sector, then checks the magic byte;
    _ota_write() adds `Error: esp_ota_write failed! err=0x1503`."""
    image = bytearray(make_test_app(version="1.0.1"))
    image[0] = 0x00
    served.images["no_magic.bin"] = bytes(image)
    lab = make_lab()
    lab.board.chip.flash.program(OTA_1, b"\x00" * 64)  # an older image's first bytes
    start_ota(lab, served, "no_magic.bin")
    c = lab.console
    c.expect(r"E \(\d+\) esp_ota_ops: OTA image has invalid magic byte \(expected 0xE9, saw 0x00\)$")
    c.expect(r"E \(\d+\) esp_https_ota: Error: esp_ota_write failed! err=0x1503$")
    c.expect(r"rig_agent: ota failed err=0x1503 ")
    assert lab.board.chip.flash.read(OTA_1, 4096) == b"\xff" * 4096


def test_every_write_is_a_full_1024_byte_buffer(make_lab: MakeLab, served: Served) -> None:
    """esp_http_client.c:esp_http_client_read() fills the 1024-byte OTA buffer unless the
    body ends, so each esp_ota_write() programs 1024 bytes, whatever the TLS records were."""
    size = 64 * 1024 + 304
    served.images["next.bin"] = make_test_app(version="1.0.1", size=size)
    lab = make_lab()
    start_ota(lab, served, "next.bin")
    lab.console.expect(r"rig_agent: ota complete ")
    programs = [op.length for op in lab.board.chip.flash.ops()
                if op.kind is OpKind.PROGRAM and OTA_1 <= op.address < OTA_1 + SLOT]
    assert sum(programs) == len(served.images["next.bin"])
    assert set(programs[:-1]) == {1024} and programs[-1] <= 1024
