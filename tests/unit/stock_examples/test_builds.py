"""Lab build directories and the run's view of an ESP-IDF checkout: what Espressif's tests
read through pytest-embedded-idf is there, and the checkout itself is never written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_embedded_idf.app import IdfApp

from rig.errors import InputError
from rig.esp.example_image import STOCK_PROJECTS, find_kconfig
from rig.esp.signing import SigningKey, SigningScheme
from rig.idf.builds import BuildSpec, write_build
from rig.idf.catalog import BUILDABLE
from rig.idf.checkout import Checkout, build_view
from rig.net.certs import ensure_bundle
from twin.firmware.simple_ota import partition_sha256


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return ensure_bundle(tmp_path_factory.mktemp("certs")).ca_pem.read_bytes()


def test_pytest_embedded_reads_a_lab_build(tmp_path: Path, ca_pem: bytes) -> None:
    ci = BUILDABLE["advanced_https_ota"]["partial_download"]
    spec = BuildSpec("advanced_https_ota", "partial_download", ci.choices)
    out = write_build(tmp_path, spec, version="v5.5.5", ca_pem=ca_pem)
    app = IdfApp(app_path=str(tmp_path), build_dir=out.name)
    assert app.target == "esp32"
    assert [(f.offset, Path(f.file_path).name) for f in app.flash_files] == [
        (0x1000, "bootloader.bin"), (0x8000, "partition-table.bin"), (0xF000, "ota_data_initial.bin"),
        (0x20000, "advanced_https_ota.bin"),
    ]  # fmt: skip
    assert app.flash_settings["flash_mode"] == "dio"
    assert app.sdkconfig["EXAMPLE_ENABLE_PARTIAL_HTTP_DOWNLOAD"] is True
    assert int(app.sdkconfig["EXAMPLE_HTTP_REQUEST_SIZE"]) == 16384
    compiled_in = find_kconfig((out / "advanced_https_ota.bin").read_bytes())
    assert compiled_in is not None
    assert {k: app.sdkconfig[k] for k in compiled_in} == compiled_in  # what sdkconfig.json describes


def test_the_bootloader_digest_simple_ota_prints_is_the_one_its_test_computes(
    tmp_path: Path, ca_pem: bytes
) -> None:
    """pytest_simple_ota.py compares `SHA-256 for bootloader:` with IdfApp.get_sha256()."""
    out = write_build(tmp_path, BuildSpec("simple_ota", "default", {}), version="v5.5.5", ca_pem=ca_pem)
    app = IdfApp(app_path=str(tmp_path), build_dir=out.name)
    for name in ("bootloader/bootloader.bin", "simple_ota.bin"):
        data = (out / name).read_bytes()
        assert partition_sha256(data).hex() == app.get_sha256(str(out / name))


def test_native_ota_boots_its_factory_app_first(tmp_path: Path, ca_pem: bytes) -> None:
    out = write_build(tmp_path, BuildSpec("native_ota", "default", {}), version="v5.5.5", ca_pem=ca_pem)
    files = json.loads((out / "flasher_args.json").read_text())["flash_files"]
    assert files["0x10000"] == "native_ota.bin"  # CONFIG_PARTITION_TABLE_TWO_OTA: factory at 0x10000


def _fake_checkout(root: Path, ca_pem: bytes) -> Path:
    (root / "tools/ci/python_packages").mkdir(parents=True)
    (root / "tools/ci/python_packages/common_test_methods.py").write_text("")
    (root / "components").mkdir()
    for relative in STOCK_PROJECTS.values():
        example = root / relative
        (example / "server_certs").mkdir(parents=True)
        (example / "server_certs/ca_cert.pem").write_bytes(ca_pem)
        (example / "pytest_example.py").write_text("def test_nothing():\n    pass\n")
        (example / "test").mkdir()
    keys = root / STOCK_PROJECTS["simple_ota"] / "test"
    SigningKey.generate(keys / "secure_boot_signing_key.pem", SigningScheme.RSA3072_SBV2)
    SigningKey.generate(keys / "secure_boot_signing_key_ecdsa.pem", SigningScheme.ECDSA256_V1)
    return root


def test_the_view_links_the_checkout_and_builds_beside_it(tmp_path: Path, ca_pem: bytes) -> None:
    root = _fake_checkout(tmp_path / "esp-idf", ca_pem)
    before = sorted(str(p) for p in root.rglob("*"))
    tests = build_view(Checkout.at(root), tmp_path / "view", lab_builds=True, wifi=("lab", "pw"))
    assert sorted(str(p) for p in root.rglob("*")) == before  # nothing written into the checkout
    view = tmp_path / "view"
    assert [t.relative_to(view).as_posix() for t in tests] == [
        f"{relative}/pytest_example.py" for relative in STOCK_PROJECTS.values()
    ]
    assert all(t.is_symlink() for t in tests)
    builds = sorted(p.name for p in (view / STOCK_PROJECTS["simple_ota"]).glob("build_esp32_*"))
    assert builds == sorted(f"build_esp32_{c}" for c in BUILDABLE["simple_ota"])
    assert "ap_ssid: lab" in (view / "EnvConfig.yml").read_text()
    assert "rig.idf.ci_fixtures" in (view / "conftest.py").read_text()


def test_a_checkout_without_the_examples_is_refused(tmp_path: Path, ca_pem: bytes) -> None:
    root = _fake_checkout(tmp_path / "esp-idf", ca_pem)
    (root / STOCK_PROJECTS["native_ota"] / "pytest_example.py").unlink()
    with pytest.raises(InputError, match="no pytest file in examples/system/ota/native_ota_example"):
        Checkout.at(root)
