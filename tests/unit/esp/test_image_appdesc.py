"""esp_app_desc_t codec: round trips, ESP-IDF's field offsets, bad input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.errors import FormatError, InputError
from rig.esp.appdesc import APP_DESC_MAGIC, AppDescriptor, decode


def _text(max_bytes: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(min_codepoint=1, max_codepoint=0x7F), max_size=max_bytes - 1)


descriptors = st.builds(
    AppDescriptor,
    secure_version=st.integers(0, 0xFFFFFFFF),
    version=_text(32),
    project_name=_text(32),
    time=_text(16),
    date=_text(16),
    idf_ver=_text(32),
    app_elf_sha256=st.binary(min_size=32, max_size=32),
    min_efuse_blk_rev_full=st.integers(0, 0xFFFF),
    max_efuse_blk_rev_full=st.integers(0, 0xFFFF),
    mmu_page_size=st.integers(0, 0xFF),
)


@given(descriptors)
def test_encode_decode_round_trip(desc: AppDescriptor) -> None:
    raw = desc.encode()
    assert len(raw) == 256
    assert decode(raw) == desc


def test_fields_sit_where_esp_idf_and_pytest_embedded_read_them() -> None:
    desc = AppDescriptor(7, "2.3.0-rc1", "proj", "12:34:56", "Jan  2 2025", "v5.5.5", bytes(range(32)))
    raw = desc.encode()
    # File offset = struct offset + 0x20; Espressif's anti-rollback test zeroes file byte 36.
    assert struct.unpack_from("<II", raw, 0) == (APP_DESC_MAGIC, 7)
    assert raw[16:25] == b"2.3.0-rc1" and raw[25] == 0
    assert raw[48:52] == b"proj"
    assert raw[144:176] == bytes(range(32))  # pytest-embedded reads app offset + 0xB0
    assert raw[180] == 16


def test_bad_magic_is_the_esp_https_ota_error() -> None:
    with pytest.raises(FormatError, match="Incorrect app descriptor magic"):
        decode(bytes(256))


def test_truncated_descriptor_is_refused() -> None:
    with pytest.raises(FormatError, match="truncated"):
        decode(b"\x32\x54\xcd\xab" + bytes(100))


def test_overlong_version_is_refused_with_the_field_name() -> None:
    with pytest.raises(InputError, match="version"):
        AppDescriptor(0, "x" * 32, "p", "", "", "", bytes(32)).encode()
