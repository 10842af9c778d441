"""ESP32 app images (`esp_image_header_t` + segments + checksum + SHA-256 + signature).

One walker serves three users: `parse` (the rig, one-line FormatErrors), `verify_image`
(the twin's bootloader and OTA agent: fault + the values ESP-IDF prints, in ESP-IDF's
`image_load` order) and `patch_image` (mutants). Images are built with esptool's own
`ESP32FirmwareImage`, so layout quirks match real `elf2image` output.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum, IntEnum
from functools import reduce
from operator import xor

import numpy as np
from esptool.bin_image import ELFSection, ESP32FirmwareImage

from rig.errors import FormatError, InputError
from rig.esp.appdesc import APP_DESC_FILE_OFFSET, APP_DESC_MAGIC, APP_DESC_SIZE, AppDescriptor, decode
from rig.esp.marker import MARKER_SIZE, Behaviour, BehaviourMarker, find_marker
from rig.esp.signing import SignatureInfo, SigningKey, SigningScheme, find_signature, sign_image

IMAGE_MAGIC = 0xE9
HEADER_SIZE = 24
SEGMENT_HEADER_SIZE = 8
# esp_image_format.c:should_map() with soc/esp32/include/soc/soc.h's SOC_DROM_LOW/HIGH and
# SOC_IROM_LOW/HIGH: segments in these windows are mapped through the 64 KiB MMU pages.
MAPPED_WINDOWS = ((0x3F400000, 0x3F800000), (0x400D0000, 0x40400000))
MMU_PAGE_SIZE = 0x10000


def is_mapped(address: int) -> bool:
    return any(lo <= address < hi for lo, hi in MAPPED_WINDOWS)
MAX_SEGMENTS = 16
MAX_PARTITION_SIZE = 16 * 1024 * 1024
CHECKSUM_SEED = 0xEF
DROM_ADDR = 0x3F400020
_HEADER = struct.Struct("<BBBBIB3sHBHH4sB")
_FLASH_SIZES = {"1MB": 0, "2MB": 1, "4MB": 2, "8MB": 3, "16MB": 4, "32MB": 5, "64MB": 6, "128MB": 7}
# Default non-descriptor segments of a built test app (DRAM, IRAM with the entry point).
_DEFAULT_SEGMENTS = ((0x3FFB0000, 0x40), (0x40080000, 0x800))
_ENTRY = 0x40080404


class ChipId(IntEnum):
    """`esp_chip_id_t` as stored in the image header."""

    ESP32 = 0x0000
    ESP32S2 = 0x0002
    ESP32C3 = 0x0005
    ESP32S3 = 0x0009
    ESP32C2 = 0x000C
    ESP32C6 = 0x000D
    ESP32H2 = 0x0010
    ESP32P4 = 0x0012
    ESP32C61 = 0x0014
    ESP32C5 = 0x0017
    ESP32H21 = 0x0019
    ESP32H4 = 0x001C


class ImageFault(Enum):
    """Why ESP-IDF's `image_load` refuses an image, in the order it checks."""

    PARTITION_TOO_LARGE = "partition_too_large"
    BAD_MAGIC = "bad_magic"
    TRUNCATED = "truncated"
    CHIP_ID_MISMATCH = "chip_id_mismatch"
    CHIP_REV_TOO_LOW = "chip_rev_too_low"
    CHIP_REV_TOO_HIGH = "chip_rev_too_high"
    TOO_MANY_SEGMENTS = "too_many_segments"
    BAD_SEGMENT_LENGTH = "bad_segment_length"
    SEGMENT_MISMATCH = "segment_mismatch"
    CHECKSUM = "checksum"
    TOO_LONG_FOR_PARTITION = "too_long_for_partition"
    HASH = "hash"


@dataclass(frozen=True)
class Segment:
    """One segment; `file_offset` is where its 8-byte header sits in the file."""

    load_addr: int
    data: bytes
    file_offset: int

    @property
    def data_offset(self) -> int:
        return self.file_offset + SEGMENT_HEADER_SIZE


@dataclass(frozen=True)
class ImageHeader:
    """The fields of esp_image_header_t the rig reads (the magic byte is checked, not kept)."""

    segment_count: int
    spi_mode: int
    spi_speed: int
    spi_size: int
    entry_addr: int
    wp_pin: int
    chip_id: int
    min_chip_rev_full: int
    max_chip_rev_full: int
    hash_appended: bool


@dataclass(frozen=True, kw_only=True)
class AppImage(ImageHeader):
    """A parsed image. `image_length` runs through the SHA-256 (or the checksum block)."""

    raw: bytes
    segments: tuple[Segment, ...]
    checksum_stored: int
    checksum_calculated: int
    checksum_offset: int
    hash_stored: bytes | None
    hash_calculated: bytes | None
    image_length: int
    desc: AppDescriptor | None
    signature: SignatureInfo | None

    @property
    def checksum_ok(self) -> bool:
        return self.checksum_stored == self.checksum_calculated

    @property
    def hash_ok(self) -> bool:
        """True when no hash is appended (nothing to fail) or it matches."""
        return self.hash_stored == self.hash_calculated


@dataclass(frozen=True)
class ImageCheck:
    """Verdict of `verify_image`; `detail` holds the numbers ESP-IDF's log line prints."""

    fault: ImageFault | None
    detail: dict[str, int] = field(default_factory=dict)
    length: int = 0
    image: AppImage | None = None

    @property
    def ok(self) -> bool:
        return self.fault is None


class _Fault(Exception):
    """Internal: a walker stop, carrying both the fault and the user-facing sentence."""

    def __init__(self, fault: ImageFault, message: str, **detail: int) -> None:
        super().__init__(message)
        self.fault = fault
        self.detail = detail


def _header(data: bytes) -> ImageHeader:
    if not data or data[0] != IMAGE_MAGIC:
        magic = data[0] if data else 0xFF
        raise _Fault(
            ImageFault.BAD_MAGIC,
            f"not an ESP app image (magic byte 0x{magic:02x}, expected 0xe9)",
            magic=magic,
        )
    if len(data) < HEADER_SIZE:
        raise _Fault(
            ImageFault.TRUNCATED, f"image truncated: {len(data)} bytes, header needs {HEADER_SIZE}",
            length=len(data), needed=HEADER_SIZE,
        )
    f = _HEADER.unpack_from(data)
    return ImageHeader(
        segment_count=f[1], spi_mode=f[2], spi_speed=f[3] & 0x0F, spi_size=f[3] >> 4,
        entry_addr=f[4], wp_pin=f[5], chip_id=f[7], min_chip_rev_full=f[9], max_chip_rev_full=f[10],
        hash_appended=f[12] == 1,
    )


def _segments_count_ok(header: ImageHeader) -> None:
    if header.segment_count > MAX_SEGMENTS:
        raise _Fault(
            ImageFault.TOO_MANY_SEGMENTS,
            f"image segment count {header.segment_count} exceeds max {MAX_SEGMENTS}",
            count=header.segment_count, max=MAX_SEGMENTS,
        )


def _segments(data: bytes, header: ImageHeader) -> tuple[Segment, ...]:
    segments = []
    offset = HEADER_SIZE
    for index in range(header.segment_count):
        if offset + SEGMENT_HEADER_SIZE > len(data):
            raise _Fault(
                ImageFault.TRUNCATED, f"image truncated in the header of segment {index} at 0x{offset:x}",
                length=len(data), needed=offset + SEGMENT_HEADER_SIZE, segment=index,
            )
        load_addr, length = struct.unpack_from("<II", data, offset)
        if length % 4 or length >= MAX_PARTITION_SIZE:
            raise _Fault(
                ImageFault.BAD_SEGMENT_LENGTH, f"invalid segment length 0x{length:x} (segment {index})",
                length=length, segment=index,
            )
        start = offset + SEGMENT_HEADER_SIZE
        if start + length > len(data):
            raise _Fault(
                ImageFault.TRUNCATED,
                f"image truncated: segment {index} needs {start + length} bytes, file has {len(data)}",
                length=len(data), needed=start + length, segment=index,
            )
        segments.append(Segment(load_addr, data[start : start + length], offset))
        offset = start + length
    return tuple(segments)


def _xor_fold(chunks: Sequence[bytes]) -> int:
    """ESP-IDF's checksum: 0xEF XOR every segment data byte (64-bit words in numpy for speed:
    a sweep verifies a 1 MiB image hundreds of times)."""
    words = 0
    tail = 0
    for chunk in chunks:
        cut = len(chunk) - len(chunk) % 8
        if cut:
            words ^= int(np.bitwise_xor.reduce(np.frombuffer(chunk, dtype="<u8", count=cut // 8)))
        tail ^= reduce(xor, chunk[cut:], 0)
    folded = reduce(xor, words.to_bytes(8, "little"), 0)
    return CHECKSUM_SEED ^ folded ^ tail


def _checksum_offset(segments: tuple[Segment, ...]) -> int:
    end = segments[-1].data_offset + len(segments[-1].data) if segments else HEADER_SIZE
    return ((end + 1 + 15) & ~15) - 1


@dataclass(frozen=True)
class _Layout:
    header: ImageHeader
    segments: tuple[Segment, ...]
    checksum_offset: int
    image_length: int


def _layout(data: bytes) -> _Layout:
    header = _header(data)
    _segments_count_ok(header)
    segments = _segments(data, header)
    checksum_offset = _checksum_offset(segments)
    length = checksum_offset + 1 + (32 if header.hash_appended else 0)
    if length > len(data):
        raise _Fault(
            ImageFault.TRUNCATED,
            f"image truncated: checksum and hash need {length} bytes, file has {len(data)}",
            length=len(data), needed=length,
        )
    return _Layout(header, segments, checksum_offset, length)


def _descriptor(segments: tuple[Segment, ...]) -> AppDescriptor | None:
    if not segments or len(segments[0].data) < APP_DESC_SIZE:
        return None
    if struct.unpack_from("<I", segments[0].data)[0] != APP_DESC_MAGIC:
        return None
    return decode(segments[0].data)


def _parse(data: bytes) -> AppImage:
    layout = _layout(data)
    h = layout.header
    end_of_checksum = layout.checksum_offset + 1
    hash_stored = data[end_of_checksum : end_of_checksum + 32] if h.hash_appended else None
    hash_calculated = hashlib.sha256(data[:end_of_checksum]).digest() if h.hash_appended else None
    return AppImage(
        **vars(h), raw=data, segments=layout.segments,
        checksum_stored=data[layout.checksum_offset],
        checksum_calculated=_xor_fold([s.data for s in layout.segments]),
        checksum_offset=layout.checksum_offset, hash_stored=hash_stored, hash_calculated=hash_calculated,
        image_length=layout.image_length, desc=_descriptor(layout.segments),
        signature=find_signature(data, layout.image_length),
    )


def parse(data: bytes) -> AppImage:
    """Parse an image (trailing bytes allowed); structural garbage is a one-line FormatError.

    A bad checksum or hash is not an error here: it is reported in the result.
    """
    try:
        return _parse(bytes(data))
    except _Fault as fault:
        raise FormatError(str(fault)) from None


def _rev(full: int) -> tuple[int, int]:
    return full // 100, full % 100


def _mapping_ok(image: AppImage, partition_offset: int) -> None:
    """esp_image_format.c:verify_segment_header(): a mapped segment's data must sit at the same
    offset within a 64 KiB MMU page in flash as its load address does in the address space."""
    for index, segment in enumerate(image.segments):
        data_at = partition_offset + segment.file_offset + SEGMENT_HEADER_SIZE
        if is_mapped(segment.load_addr) and data_at % MMU_PAGE_SIZE != segment.load_addr % MMU_PAGE_SIZE:
            raise _Fault(
                ImageFault.SEGMENT_MISMATCH, f"segment {index} is not aligned to its load address",
                segment=index, load_addr=segment.load_addr, data=data_at,
            )


def leading_segments(data: bytes, count: int) -> tuple[Segment, ...]:
    """The first `count` segments, read before a later one failed its header check (esp_image
    logs each segment's line as it walks, so those before the fault are printed)."""
    segments, offset = [], HEADER_SIZE
    for _ in range(count):
        load_addr, length = struct.unpack_from("<II", data, offset)
        start = offset + SEGMENT_HEADER_SIZE
        segments.append(Segment(load_addr, data[start : start + length], offset))
        offset = start + length
    return tuple(segments)


def _chip_checks(header: ImageHeader, chip_id: int, chip_rev_full: int) -> None:
    if header.chip_id != chip_id:
        raise _Fault(
            ImageFault.CHIP_ID_MISMATCH, f"mismatch chip ID, expected {chip_id}, found {header.chip_id}",
            expected=chip_id, found=header.chip_id,
        )
    found_major, found_minor = _rev(chip_rev_full)
    if chip_rev_full < header.min_chip_rev_full:
        major, minor = _rev(header.min_chip_rev_full)
        raise _Fault(
            ImageFault.CHIP_REV_TOO_LOW, f"chip revision check failed. Required >= v{major}.{minor}",
            required_major=major, required_minor=minor, found_major=found_major, found_minor=found_minor,
        )
    limit = header.max_chip_rev_full
    if limit not in (0, 0xFFFF) and chip_rev_full > limit:
        major, minor = _rev(limit)
        raise _Fault(
            ImageFault.CHIP_REV_TOO_HIGH, f"chip revision check failed. Required <= v{major}.{minor}",
            required_major=major, required_minor=minor, found_major=found_major, found_minor=found_minor,
        )


SBV2_SIGNATURE_SECTOR = 0x1000  # sizeof(ets_secure_boot_signature_t)
ECDSA_V1_SIG_BLOCK = 68  # sizeof(esp_secure_boot_sig_block_t)


def signature_block_len(end: int, scheme: SigningScheme | None) -> int:
    """Bytes a signed app occupies after its end (hash included): esp_image_format.c:
    process_appended_hash_and_sig() - the pad to the next 4 KiB and the 4 KiB signature
    sector for RSA (SBv2), the 68-byte block for ECDSA v1."""
    if scheme is None:
        return 0
    if scheme is SigningScheme.ECDSA256_V1:
        return ECDSA_V1_SIG_BLOCK
    return -end % SBV2_SIGNATURE_SECTOR + SBV2_SIGNATURE_SECTOR


def verify_image(
    data: bytes,
    *,
    chip_id: int = 0,
    chip_rev_full: int = 300,
    partition_size: int | None = None,
    partition_offset: int = 0,
    signed_apps: SigningScheme | None = None,
) -> ImageCheck:
    """Check an image as ESP-IDF's `image_load` does, stopping at the first fault.

    `signed_apps` is the build's CONFIG_SECURE_SIGNED_APPS scheme: the length check then
    counts the signature block too (esp_image_format.c:process_appended_hash_and_sig()).

    `data` may be a whole partition (trailing 0xFF or stale bytes); the image length
    comes from the segments. Offsets in `detail` are flash addresses
    (`partition_offset` + file offset).
    """
    data = bytes(data)
    try:
        if partition_size is not None and partition_size > MAX_PARTITION_SIZE:
            raise _Fault(ImageFault.PARTITION_TOO_LARGE, "partition larger than 16MB", size=partition_size)
        try:
            header = _header(data)
        except _Fault as fault:
            fault.detail["offset"] = partition_offset
            raise
        _chip_checks(header, chip_id, chip_rev_full)
        try:
            _segments_count_ok(header)
        except _Fault as fault:
            fault.detail["offset"] = partition_offset
            raise
        image = _parse(data)
        _mapping_ok(image, partition_offset)
        if not image.checksum_ok:
            raise _Fault(
                ImageFault.CHECKSUM, "checksum failed",
                calculated=image.checksum_calculated, read=image.checksum_stored,
            )
        full_length = image.image_length + signature_block_len(image.image_length, signed_apps)
        if partition_size is not None and full_length > partition_size:
            raise _Fault(
                ImageFault.TOO_LONG_FOR_PARTITION, "image longer than partition",
                length=full_length, partition_size=partition_size,
            )
        if not image.hash_ok:
            raise _Fault(ImageFault.HASH, "image hash failed")
    except _Fault as fault:
        return ImageCheck(fault.fault, dict(fault.detail), 0, None)
    return ImageCheck(None, {}, image.image_length, image)


def fault_log_line(check: ImageCheck) -> tuple[str, str, str] | None:
    """The (level, tag, message) ESP-IDF prints for `check.fault`, placeholders filled.

    TRUNCATED has no line of its own on a device (flash past the image reads back as
    0xFF and fails a later check), so it maps to None, as does success.
    """
    d = check.detail
    match check.fault:
        case ImageFault.PARTITION_TOO_LARGE:
            return "E", "esp_image", f"partition size 0x{d['size']:x} invalid, larger than 16MB"
        case ImageFault.BAD_MAGIC:
            where = f"image at 0x{d['offset']:x}"
            return "E", "esp_image", f"{where} has invalid magic byte (nothing flashed here?)"
        case ImageFault.CHIP_ID_MISMATCH:
            return "E", "boot_comm", f"mismatch chip ID, expected {d['expected']}, found {d['found']}"
        case ImageFault.CHIP_REV_TOO_LOW | ImageFault.CHIP_REV_TOO_HIGH:
            relation = ">=" if check.fault is ImageFault.CHIP_REV_TOO_LOW else "<="
            return "E", "boot_comm", (
                f"chip revision check failed. Required {relation} "
                f"v{d['required_major']}.{d['required_minor']}, found v{d['found_major']}.{d['found_minor']}."
            )
        case ImageFault.TOO_MANY_SEGMENTS:
            where = f"image at 0x{d['offset']:x}"
            return "E", "esp_image", f"{where} segment count {d['count']} exceeds max {d['max']}"
        case ImageFault.BAD_SEGMENT_LENGTH:
            return "E", "esp_image", f"invalid segment length 0x{d['length']:x}"
        case ImageFault.SEGMENT_MISMATCH:
            where = f"Segment {d['segment']} load address 0x{d['load_addr']:08x}"
            return "E", "esp_image", f"{where}, doesn't match data 0x{d['data']:08x}"
        case ImageFault.CHECKSUM:
            return "E", "esp_image", f"Checksum failed. Calculated 0x{d['calculated']:x} read 0x{d['read']:x}"
        case ImageFault.TOO_LONG_FOR_PARTITION:
            length, size = d["length"], d["partition_size"]
            return "E", "esp_image", f"Image length {length} doesn't fit in partition length {size}"
        case ImageFault.HASH:
            return "E", "esp_image", "Image hash failed - image is corrupt"
        case _:
            return None


def _flash_size_nibble(flash_size: str) -> int:
    try:
        return _FLASH_SIZES[flash_size.upper()]
    except KeyError:
        raise InputError(f"unknown flash size {flash_size!r} (one of {', '.join(_FLASH_SIZES)})") from None


def _filler(seed: bytes, size: int) -> bytes:
    """Deterministic pseudo-random bytes standing in for code and data."""
    return hashlib.shake_256(seed).digest(size) if size else b""


def _save(
    drom: bytes, segments: Sequence[tuple[int, bytes]], flash_size: str, min_rev_full: int, max_rev_full: int
) -> bytes:
    image = ESP32FirmwareImage()
    image.flash_mode = 2  # DIO
    image.flash_size_freq = _flash_size_nibble(flash_size) << 4  # 40 MHz
    image.entrypoint = _ENTRY
    image.min_rev = min_rev_full // 100
    image.min_rev_full = min_rev_full
    image.max_rev_full = max_rev_full
    sections = [ELFSection(b".flash.appdesc", DROM_ADDR, drom, 0)]
    sections += [ELFSection(f".seg{i}".encode(), addr, data, 0) for i, (addr, data) in enumerate(segments)]
    image.segments = sections
    saved = image.save(None)
    assert saved is not None  # save(None) returns the bytes
    return bytes(saved)


def build_app_image(
    *,
    desc: AppDescriptor,
    segments: Sequence[tuple[int, bytes]] | None = None,
    chip_id: int = 0,
    min_rev_full: int = 0,
    max_rev_full: int = 399,
    flash_size: str = "4MB",
    payload_size: int = 0,
    rodata: bytes = b"",
) -> bytes:
    """A valid unsigned app: DROM segment 0 = `desc` + `rodata` (+ filler), then `segments`.

    `payload_size` > 0 asks for an image of exactly that many bytes (a multiple of 16):
    the DROM segment is filled with deterministic pseudo-random bytes to reach it.
    """
    if segments is None:
        segments = [(addr, _filler(b"seg%x" % addr, size)) for addr, size in _DEFAULT_SEGMENTS]
    drom = desc.encode() + rodata
    drom += bytes(-len(drom) % 4)
    saved = _save(drom, segments, flash_size, min_rev_full, max_rev_full)
    if payload_size:
        if payload_size % 16 or payload_size < len(saved):
            raise InputError(
                f"payload_size {payload_size} must be a multiple of 16 and at least {len(saved)} bytes"
            )
        seed = f"{desc.project_name}/{desc.version}".encode()
        saved = _save(drom + _filler(seed, payload_size - len(saved)), segments, flash_size, min_rev_full,
                      max_rev_full)
        if len(saved) != payload_size:
            raise InputError(f"cannot build an image of exactly {payload_size} bytes with these segments")
    if chip_id:
        return patch_image(saved, chip_id=chip_id)
    return saved


def _fix_digests(buf: bytearray) -> None:
    try:
        layout = _layout(bytes(buf))
    except _Fault as fault:
        raise FormatError(str(fault)) from None
    buf[layout.checksum_offset] = _xor_fold([s.data for s in layout.segments])
    end = layout.checksum_offset + 1
    if layout.header.hash_appended:
        buf[end : end + 32] = hashlib.sha256(bytes(buf[:end])).digest()


def recompute_digests(data: bytes) -> bytes:
    """`data` with its checksum and SHA-256 made right; bytes after the image are kept as they are."""
    buf = bytearray(data)
    _fix_digests(buf)
    return bytes(buf)


def strip_signature(data: bytes) -> bytes:
    """The image without its signature (or any other trailing bytes)."""
    return bytes(data[: parse(data).image_length])


def patch_image(
    data: bytes,
    *,
    version: str | None = None,
    secure_version: int | None = None,
    project_name: str | None = None,
    chip_id: int | None = None,
    min_rev_full: int | None = None,
    max_rev_full: int | None = None,
    behaviour: Behaviour | None = None,
    behaviour_param: int | None = None,
    key: SigningKey | None = None,
) -> bytes:
    """Strip any signature, apply the changes, recompute checksum + SHA-256, re-sign with `key`."""
    buf = bytearray(strip_signature(data))
    if version is not None or secure_version is not None or project_name is not None:
        desc = parse(bytes(buf)).desc
        if desc is None:
            raise FormatError("image has no app descriptor (magic 0xABCD5432 at offset 0x20) to patch")
        new_desc = replace(
            desc,
            version=desc.version if version is None else version,
            secure_version=desc.secure_version if secure_version is None else secure_version,
            project_name=desc.project_name if project_name is None else project_name,
        )
        buf[APP_DESC_FILE_OFFSET : APP_DESC_FILE_OFFSET + APP_DESC_SIZE] = new_desc.encode()
    for value, offset in ((chip_id, 12), (min_rev_full, 15), (max_rev_full, 17)):
        if value is not None:
            if not 0 <= value <= 0xFFFF:
                raise InputError(f"header field value {value} does not fit in 16 bits")
            struct.pack_into("<H", buf, offset, value)
    if min_rev_full is not None:
        buf[14] = min(min_rev_full // 100, 0xFF)  # legacy min_chip_rev byte
    if behaviour is not None or behaviour_param is not None:
        offset, marker = find_marker(bytes(buf))
        new_marker = BehaviourMarker(
            behaviour if behaviour is not None else marker.behaviour,
            behaviour_param if behaviour_param is not None else marker.param,
        )
        buf[offset : offset + MARKER_SIZE] = new_marker.encode()
    _fix_digests(buf)
    return sign_image(bytes(buf), key) if key is not None else bytes(buf)
