"""App image build / parse / verify / patch, checked against esptool's own reader."""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Callable
from pathlib import Path

import esptool
import pytest

from rig.cli import main
from rig.errors import FormatError
from rig.esp.image import (
    ChipId,
    ImageFault,
    fault_log_line,
    parse,
    patch_image,
    recompute_digests,
    strip_signature,
    verify_image,
)
from rig.esp.marker import Behaviour, find_marker
from rig.esp.testimage import make_test_app


def esptool_image_info(path: Path) -> str:
    """`esptool image-info` in-process; its verdict is the reference for ours."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        esptool.main(["image-info", str(path)])
    return out.getvalue()


@pytest.fixture(scope="module")
def app() -> bytes:
    return make_test_app(version="1.2.3", secure_version=2)


def test_test_app_is_valid_for_esptool(app: bytes, tmp_path: Path) -> None:
    path = tmp_path / "app.bin"
    path.write_bytes(app)
    info = esptool_image_info(path)
    assert info.split("Checksum: ")[1].splitlines()[0].endswith("(valid)")
    assert info.split("Validation hash: ")[1].splitlines()[0].endswith("(valid)")
    for line in ("App version: 1.2.3", "Project name: ota-rig-ref", "Secure version: 2"):
        assert line in info


def test_parse_reads_what_was_built(app: bytes) -> None:
    image = parse(app)
    assert len(app) == 128 * 1024 == image.image_length
    assert image.chip_id == ChipId.ESP32 and image.max_chip_rev_full == 399 and image.hash_appended
    assert image.segments[0].load_addr == 0x3F400020 and image.segments[0].data_offset == 0x20
    assert image.checksum_ok and image.hash_ok and image.signature is None
    assert image.desc is not None and (image.desc.version, image.desc.secure_version) == ("1.2.3", 2)
    assert find_marker(app)[1].behaviour is Behaviour.HEALTHY


def test_test_apps_are_deterministic_and_sized() -> None:
    one = make_test_app(version="1.0.0", size=1024 * 1024)
    assert one == make_test_app(version="1.0.0", size=1024 * 1024)
    assert len(one) == 1024 * 1024
    assert one != make_test_app(version="1.0.1", size=1024 * 1024)


def test_whole_partition_read_verifies(app: bytes) -> None:
    check = verify_image(app + b"\xff" * 70000, partition_size=0x1B0000, partition_offset=0x20000)
    assert check.ok and check.length == len(app)


@pytest.mark.parametrize(
    ("mutate", "kwargs", "fault", "line"),
    [
        (lambda d: b"\x00" + d[1:], {"partition_offset": 0x110000}, ImageFault.BAD_MAGIC,
         "image at 0x110000 has invalid magic byte (nothing flashed here?)"),
        (lambda d: d, {"chip_id": ChipId.ESP32S3}, ImageFault.CHIP_ID_MISMATCH,
         "mismatch chip ID, expected 9, found 0"),
        (lambda d: patch_image(d, min_rev_full=301), {}, ImageFault.CHIP_REV_TOO_LOW,
         "chip revision check failed. Required >= v3.1, found v3.0."),
        (lambda d: patch_image(d, max_rev_full=199), {}, ImageFault.CHIP_REV_TOO_HIGH,
         "chip revision check failed. Required <= v1.99, found v3.0."),
        (lambda d: d[:1] + b"\x11" + d[2:], {"partition_offset": 0x10000}, ImageFault.TOO_MANY_SEGMENTS,
         "image at 0x10000 segment count 17 exceeds max 16"),
        (lambda d: d[:28] + struct.pack("<I", 0x102) + d[32:], {}, ImageFault.BAD_SEGMENT_LENGTH,
         "invalid segment length 0x102"),
        (lambda d: d[:-33] + bytes([d[-33] ^ 1]) + d[-32:], {}, ImageFault.CHECKSUM, None),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), {}, ImageFault.HASH, "Image hash failed - image is corrupt"),
        (lambda d: d, {"partition_size": 0x10000}, ImageFault.TOO_LONG_FOR_PARTITION,
         "Image length 131072 doesn't fit in partition length 65536"),
        (lambda d: d[:5000], {}, ImageFault.TRUNCATED, None),
    ],
)
def test_verify_faults_and_their_log_lines(
    app: bytes, mutate: Callable[[bytes], bytes], kwargs: dict[str, int], fault: ImageFault, line: str | None
) -> None:
    check = verify_image(mutate(app), **kwargs)
    assert check.fault is fault and not check.ok
    if line is not None:
        rendered = fault_log_line(check)
        assert rendered is not None and rendered[2] == line


def test_checksum_fault_carries_both_values(app: bytes) -> None:
    bad = bytearray(app)
    bad[-33] ^= 0x0F
    check = verify_image(bytes(bad))
    assert check.detail == {"calculated": app[-33], "read": app[-33] ^ 0x0F}
    assert fault_log_line(check) == (
        "E", "esp_image", f"Checksum failed. Calculated 0x{app[-33]:x} read 0x{app[-33] ^ 0x0F:x}"
    )


def test_payload_flip_is_caught_by_checksum_like_esptool(app: bytes, tmp_path: Path) -> None:
    bad = bytearray(app)
    bad[0x8000] ^= 0x40
    path = tmp_path / "bad.bin"
    path.write_bytes(bad)
    assert "invalid - calculated" in esptool_image_info(path)
    assert verify_image(bytes(bad)).fault is ImageFault.CHECKSUM


def test_patch_changes_fields_and_stays_valid(app: bytes, tmp_path: Path) -> None:
    patched = patch_image(
        app, version="9.9.9", secure_version=5, project_name="other",
        behaviour=Behaviour.HANG, behaviour_param=77,
    )
    image = parse(patched)
    assert image.desc is not None
    assert (image.desc.version, image.desc.secure_version, image.desc.project_name) == ("9.9.9", 5, "other")
    assert find_marker(patched)[1].param == 77 and find_marker(patched)[1].behaviour is Behaviour.HANG
    assert verify_image(patched).ok and len(patched) == len(app)
    path = tmp_path / "p.bin"
    path.write_bytes(patched)
    info = esptool_image_info(path)
    assert "App version: 9.9.9" in info and "invalid" not in info


def test_recompute_digests_repairs_and_keeps_trailing_bytes(app: bytes) -> None:
    bad = bytearray(app + b"TAIL")
    bad[0x9000] ^= 1
    fixed = recompute_digests(bytes(bad))
    assert verify_image(fixed).ok and fixed.endswith(b"TAIL")
    assert strip_signature(fixed) == fixed[:-4]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not an ESP app image"),
        (b"PK\x03\x04" + bytes(100), "not an ESP app image"),
        (b"\xe9\x03" + bytes(10), "truncated"),
        (b"\xe9\x20" + bytes(40), "segment count 32 exceeds max 16"),
    ],
)
def test_parse_refuses_garbage_in_one_line(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message) as caught:
        parse(data)
    assert "\n" not in str(caught.value)


def test_cli_info_and_patch(app: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "a.bin", tmp_path / "b.bin"
    src.write_bytes(app)
    args = ["--out", str(out), "--version", "2.0.0", "--behaviour", "hang"]
    assert main(["image", "patch", str(src), *args]) == 0
    assert main(["image", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "version '2.0.0'" in text and "marker: hang" in text and "checksum: " in text and "(valid)" in text


def test_cli_bad_input_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello")
    assert main(["image", "info", str(junk)]) == 2
    assert main(["image", "info", str(tmp_path / "missing.bin")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("rig: error: ") for line in err)
    assert "Traceback" not in "".join(err)


def test_a_mapped_segment_off_its_mmu_page_offset_is_refused_with_esp_idfs_line() -> None:
    """esp_image_format.c:verify_segment_header(): flash data and load address of a mapped
    segment must share their offset within a 64 KiB MMU page; 4 KiB off, segment 0 fails."""
    app = make_test_app(version="1.0.0")
    check = verify_image(app, partition_offset=0x11000)
    assert check.fault is ImageFault.SEGMENT_MISMATCH
    assert fault_log_line(check) == (
        "E", "esp_image", "Segment 0 load address 0x3f400020, doesn't match data 0x00011020")
    assert verify_image(app, partition_offset=0x20000).ok
