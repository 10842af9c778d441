"""Lab builds of Espressif's stock OTA examples (advanced_https_ota, simple_ota, native_ota).

A real build fixes two things at compile time that decide how the example behaves: its
Kconfig choices (`CONFIG_EXAMPLE_*`) and the server certificate it embeds
(`server_certs/ca_cert.pem`, linked in as `_binary_ca_cert_pem_start`). A lab image carries
both in its DROM, so a twin that boots it behaves as that build would: the choices as a
small tagged record (the twin's stand-in for code the compiler specialised), the
certificate as the NUL-terminated PEM text the linker would place there.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from types import MappingProxyType

from rig.errors import FormatError, InputError
from rig.esp.appdesc import AppDescriptor
from rig.esp.image import build_app_image
from rig.esp.signing import SigningKey, sign_image, verification_key_record

KCONFIG_MAGIC = b"OTARIGKC"
_HEADER = struct.Struct("<8sI")
PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
PEM_END = b"-----END CERTIFICATE-----"

KconfigValue = bool | int | str

# project(...) name of each example's CMakeLists.txt at ESP-IDF v5.5.5, and its directory.
STOCK_PROJECTS: Mapping[str, str] = MappingProxyType(
    {
        "advanced_https_ota": "examples/system/ota/advanced_https_ota",
        "simple_ota": "examples/system/ota/simple_ota_example",
        "native_ota": "examples/system/ota/native_ota_example",
    }
)

# Kconfig.projbuild defaults of the three examples (v5.5.5), plus the ESP-IDF options they read.
_DEFAULTS: Mapping[str, KconfigValue] = MappingProxyType(
    {
        "EXAMPLE_FIRMWARE_UPGRADE_URL": "FROM_STDIN",
        "EXAMPLE_SKIP_COMMON_NAME_CHECK": False,
        "EXAMPLE_SKIP_VERSION_CHECK": False,
        "EXAMPLE_OTA_RECV_TIMEOUT": 5000,
        "EXAMPLE_ENABLE_PARTIAL_HTTP_DOWNLOAD": False,
        "EXAMPLE_HTTP_REQUEST_SIZE": 16384,  # MBEDTLS_SSL_IN_CONTENT_LEN
        "EXAMPLE_ENABLE_OTA_RESUMPTION": False,
        "EXAMPLE_CONNECT_WIFI": True,
        "EXAMPLE_WIFI_SSID_PWD_FROM_STDIN": False,
        "EXAMPLE_WIFI_SSID": "myssid",
        "EXAMPLE_WIFI_PASSWORD": "mypassword",
        "EXAMPLE_GPIO_DIAGNOSTIC": 4,
        "LOG_DEFAULT_LEVEL_DEBUG": False,
        "MBEDTLS_SSL_PROTO_TLS1_3": False,
    }
)

def kconfig(choices: Mapping[str, KconfigValue] | None = None) -> dict[str, KconfigValue]:
    """The examples' defaults with `choices` applied; an unknown option is an input error."""
    merged = dict(_DEFAULTS)
    for key, value in (choices or {}).items():
        name = key.removeprefix("CONFIG_")
        if name not in _DEFAULTS:
            raise InputError(f"unknown example option {key} (known: {', '.join(sorted(_DEFAULTS))})")
        if type(value) is not type(_DEFAULTS[name]):
            raise InputError(f"example option {key} must be a {type(_DEFAULTS[name]).__name__}")
        merged[name] = value
    return merged


def kconfig_bytes(choices: Mapping[str, KconfigValue]) -> bytes:
    body = json.dumps(dict(sorted(choices.items())), separators=(",", ":")).encode()
    return _HEADER.pack(KCONFIG_MAGIC, len(body)) + body


def find_kconfig(image: bytes) -> dict[str, KconfigValue] | None:
    """The Kconfig record of a lab example build (None: the image carries none)."""
    at = image.find(KCONFIG_MAGIC)
    if at < 0:
        return None
    _, size = _HEADER.unpack_from(image, at)
    try:
        values = json.loads(image[at + _HEADER.size : at + _HEADER.size + size])
    except ValueError:
        raise FormatError("example Kconfig record is damaged") from None
    if not isinstance(values, dict):
        raise FormatError("example Kconfig record is damaged")
    return kconfig(values)


def find_embedded_pem(image: bytes) -> bytes | None:
    """The PEM certificate(s) an example embeds (`_binary_ca_cert_pem_start`), or None."""
    start = image.find(PEM_BEGIN)
    if start < 0:
        return None
    end = image.find(b"\0", start)
    text = image[start : end if end >= 0 else len(image)]
    last = text.rfind(PEM_END)
    return text[: last + len(PEM_END)] + b"\n" if last >= 0 else None


def make_example_app(
    *,
    project: str,
    version: str,
    ca_pem: bytes,
    choices: Mapping[str, KconfigValue] | None = None,
    secure_version: int = 0,
    size: int = 256 * 1024,
    key: SigningKey | None = None,
) -> bytes:
    """A lab build of stock example `project`: app descriptor, embedded certificate, Kconfig."""
    if project not in STOCK_PROJECTS:
        raise InputError(f"{project!r} is not a stock OTA example (known: {', '.join(STOCK_PROJECTS)})")
    if PEM_BEGIN not in ca_pem:
        raise InputError("the example's server certificate must be PEM text")
    desc = AppDescriptor(
        secure_version=secure_version,
        version=version,
        project_name=project,
        time="12:00:00",
        date="Jan  1 2025",
        idf_ver="v5.5.5",
        app_elf_sha256=_elf_sha(project, version, secure_version),
    )
    rodata = kconfig_bytes(kconfig(choices)) + verification_key_record(key) + ca_pem.strip() + b"\n\0"
    image = build_app_image(desc=desc, rodata=rodata, payload_size=size)
    return sign_image(image, key) if key is not None else image


def _elf_sha(project: str, version: str, secure_version: int) -> bytes:
    return hashlib.sha256(f"stock/{project}/{version}/{secure_version}".encode()).digest()
