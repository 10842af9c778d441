"""Lab build directories of Espressif's OTA examples, laid out as `idf.py build` leaves them.

Espressif's pytest files read a build directory through pytest-embedded-idf's `IdfApp`:
`flasher_args.json` (what to flash where, with which flash settings), the app `<project>.bin`
they serve and mutate, `bootloader/bootloader.bin` whose SHA-256 simple_ota compares, and
`config/sdkconfig.json` for the options they branch on. A lab build has all of them; its app
is a lab image of the right project name (rig/esp/example_image.py), so a twin runs it as
that example would run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from esptool.bin_image import ELFSection, ESP32FirmwareImage

from rig.errors import InputError
from rig.esp.example_image import KconfigValue, kconfig, make_example_app
from rig.esp.partitions import PartitionTable
from rig.esp.signing import SigningKey
from rig.resources import fixture

BOOTLOADER_OFFSET = 0x1000
FLASH_SETTINGS = {"flash_mode": "dio", "flash_size": "4MB", "flash_freq": "40m"}
# Roughly the size of each example's real ESP32 build (v5.5.5, -Os, Wi-Fi + mbedTLS): the
# partial-download test needs several 16 KiB ranges, the resumption test a download that lasts.
APP_SIZES = {"advanced_https_ota": 912 * 1024, "simple_ota": 880 * 1024, "native_ota": 864 * 1024}
# CONFIG_PARTITION_TABLE_TWO_OTA_LARGE (advanced, simple) and CONFIG_PARTITION_TABLE_TWO_OTA (native).
TABLES = {
    "advanced_https_ota": "two_ota_large.csv",
    "simple_ota": "two_ota_large.csv",
    "native_ota": "two_ota.csv",
}
# PROJECT_VER: native_ota_example has a version.txt ("1"); the others take IDF's git describe.
VERSIONS = {"native_ota": "1"}


@dataclass(frozen=True)
class BuildSpec:
    """One build: the example, its CI config name, the choices that config makes, and how
    the build signs and where it places the partition table."""

    project: str
    config: str
    choices: Mapping[str, KconfigValue]
    signing_key: Path | None = None
    table_offset: int = 0x8000

    @property
    def dirname(self) -> str:
        return f"build_esp32_{self.config}"


def bootloader_image() -> bytes:
    """A 2nd-stage bootloader stand-in: a valid ESP32 image (DIO, 40 MHz, 4 MB, SHA-256
    appended) loaded where ESP-IDF's is (iram_loader_seg, iram_seg, dram_seg). The twin runs
    its own bootloader model; this only has to be what esptool and `IdfApp.get_sha256` read."""
    image = ESP32FirmwareImage()
    image.flash_mode = 2
    image.flash_size_freq = 0x20  # 4 MB, 40 MHz
    image.entrypoint = 0x40080688
    image.min_rev_full = 0
    image.max_rev_full = 399
    image.segments = [
        ELFSection(b".dram0.bss", 0x3FFF0000, b"\x00" * 0x20, 0),
        ELFSection(b".iram_loader.text", 0x40078000, bytes(range(256)) * 16, 0),
        ELFSection(b".iram.text", 0x40080400, bytes(range(255, -1, -1)) * 48, 0),
    ]
    saved = image.save(None)
    assert saved is not None
    return bytes(saved)


def sdkconfig_json(spec: BuildSpec) -> dict[str, KconfigValue]:
    """`config/sdkconfig.json`: the example's choices plus the target and security options."""
    values: dict[str, KconfigValue] = {
        "IDF_TARGET": "esp32",
        "IDF_TARGET_ESP32": True,
        "IDF_TARGET_ARCH_XTENSA": True,
        "PARTITION_TABLE_OFFSET": spec.table_offset,
        "ESPTOOLPY_FLASHSIZE": "4MB",
    }
    values.update(kconfig(spec.choices))
    if spec.signing_key is not None:
        values["SECURE_SIGNED_APPS_NO_SECURE_BOOT"] = True
        values["SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT"] = True
    return values


def write_build(directory: Path, spec: BuildSpec, *, version: str, ca_pem: bytes) -> Path:
    """Write `spec`'s build directory under `directory`; returns it."""
    out = directory / spec.dirname
    (out / "bootloader").mkdir(parents=True, exist_ok=True)
    (out / "partition_table").mkdir(exist_ok=True)
    (out / "config").mkdir(exist_ok=True)
    csv = fixture("partitions", TABLES[spec.project])
    table = PartitionTable.from_csv(
        csv.read_text(encoding="utf-8"), table_offset=spec.table_offset, source=str(csv)
    )
    otadata, app = table.otadata, table.ota_slots[0] if table.factory is None else table.factory
    if otadata is None:
        raise InputError(f"{csv}: no otadata partition")
    key = SigningKey.load(spec.signing_key) if spec.signing_key is not None else None
    image = make_example_app(
        project=spec.project,
        version=VERSIONS.get(spec.project, version),
        ca_pem=ca_pem,
        choices=spec.choices,
        size=APP_SIZES[spec.project],
        key=key,
    )
    files = {
        BOOTLOADER_OFFSET: ("bootloader", "bootloader/bootloader.bin", bootloader_image()),
        spec.table_offset: ("partition-table", "partition_table/partition-table.bin", table.to_binary()),
        otadata.offset: ("otadata", "ota_data_initial.bin", b"\xff" * otadata.size),
        app.offset: ("app", f"{spec.project}.bin", image),
    }
    for _, name, data in files.values():
        (out / name).write_bytes(data)
    args: dict[str, object] = {
        "write_flash_args": [
            part for key_name, value in FLASH_SETTINGS.items() for part in (f"--{key_name}", value)
        ],
        "flash_settings": FLASH_SETTINGS,
        "flash_files": {f"0x{offset:x}": name for offset, (_, name, _) in sorted(files.items())},
        "extra_esptool_args": {
            "after": "hard_reset",
            "before": "default_reset",
            "stub": True,
            "chip": "esp32",
        },
    }
    for offset, (role, name, _) in files.items():
        args[role] = {"offset": f"0x{offset:x}", "file": name, "encrypted": "false"}
    (out / "flasher_args.json").write_text(json.dumps(args, indent=4) + "\n", encoding="utf-8")
    (out / "config" / "sdkconfig.json").write_text(
        json.dumps(sdkconfig_json(spec), indent=4) + "\n", encoding="utf-8"
    )
    return out
