"""AWS IoT OTA over MQTT: jobs, CBOR streams, ECDSA code signing and the self-test, with no
rig agent on the device.

The AWS OTA end-to-end test list (amazon-freertos tools/ota_e2e_tests: a positive case
passes iff the job SUCCEEDED, a negative one iff it did not), its disconnect and cancel
cases, and the faults a fleet meets: power cuts mid-stream and in the self-test, a broker
that kicks the device or restarts, blocks lost, repeated, reordered or corrupted. Each OTA
is judged from three sources by `rig.mqtt.session.MqttSession`: the job status the device
reported, its serial log (which slot booted which version) and the otadata read-back; an
accepted image must also have erased the old one (no forced rollback).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from rig.esp.marker import Behaviour
from rig.mqtt.images import AwsImages, Signing
from rig.mqtt.session import CANCELED, SUCCEEDED, MqttSession
from rig.phase import Final

pytestmark = [pytest.mark.mqtt, pytest.mark.gate]

# A self-test long enough to cut power inside it (the demo accepts once its test is done).
SLOW_SELFTEST_MS = 800
# The bootloader's RTC watchdog: ESP-IDF's CONFIG_BOOTLOADER_WDT_TIME_MS default, and the lab's.
IDF_RTC_WDT_S = 9.0
LAB_RTC_WDT_S = 3.0  # twin/labconfig.py LAB_DEFAULTS aws_ota.rtc_wdt_ms
BAD_RELEASES = (Behaviour.SELFTEST_FAIL, Behaviour.NEVER_CONFIRM, Behaviour.CRASH_ON_BOOT)


def _log(ota: MqttSession, mark: int) -> str:
    return ota.board.console.text(mark)


def _updates(ota: MqttSession) -> list[str]:
    """Every job status message the device published in the last experiment."""
    return [update.encode().decode() for job in ota.jobs for _, update in job.updates]


def test_greater_version(ota_mqtt: MqttSession, aws_images: AwsImages) -> None:
    """GreaterVersion (+): a signed, higher version streams, passes its self-test and is
    accepted: job SUCCEEDED (`accepted  v<new>`), the new slot VALID and the old image erased
    (otaPal_EraseLastBootPartition), so nothing can roll the device back to it."""
    ota_mqtt.prepare()
    result = ota_mqtt.ok(aws_images.greater())
    log = _log(ota_mqtt, result.mark)
    for line in ("AWS_OTA: Signature verification succeeded.", "AWS_OTA: Beginning self-test.",
                 "AWS_OTA: Set image as valid one!"):  # fmt: skip
        assert line in log, line


@pytest.mark.parametrize("project", ["ota-rig-aws-min-block", "ota-rig-aws-max-block"])
def test_block_size_builds(ota_mqtt: MqttSession, aws_images: AwsImages, project: str) -> None:
    """Min/MaxBlockConfig (+): firmware built with 256-byte and 16 KiB stream blocks (on a
    real farm: your builds of those projects) still updates; the service answers in the
    block size the device asks for."""
    if not ota_mqtt.board.farm.virtual:
        pytest.skip("block-size builds are lab firmware variants")
    images = aws_images.variant(project)
    ota_mqtt.images = images
    ota_mqtt.prepare()
    ota_mqtt.ok(images.greater())


@pytest.mark.parametrize(
    "case",
    ["unsigned", "untrusted_certificate", "corrupt_after_signing", "corrupt_signature"],
)
def test_refused_signature(ota_mqtt: MqttSession, aws_images: AwsImages, case: str) -> None:
    """UnsignedImage, UntrustedCertificate, CorruptImageAfterSigning, CorruptSignature (−):
    otaPal_CloseFile() refuses the file (ECDSA-SHA256 against the embedded code-signing
    certificate; a failed check also erases the slot) and never activates it; job FAILED
    `0x000000e3: …` (OtaPalSignatureCheckFailed), the old image keeps running, untouched."""
    signing = {"unsigned": Signing.NONE, "untrusted_certificate": Signing.UNTRUSTED,
               "corrupt_after_signing": Signing.AFTER, "corrupt_signature": Signing.BAD}[case]  # fmt: skip
    ota_mqtt.prepare()
    version = aws_images.greater_version
    result = ota_mqtt.ok(aws_images.file(case, aws_images.app(version), version, signing), expect=Final.OLD)
    assert any('"reason":"0x000000e3: 0x00000000"' in u for u in _updates(ota_mqtt)), _updates(ota_mqtt)
    assert "Received entire update and validated the signature." not in _log(ota_mqtt, result.mark)


@pytest.mark.parametrize("case", ["corrupt_before_signing", "single_byte", "incorrect_platform"])
def test_refused_at_activation(ota_mqtt: MqttSession, aws_images: AwsImages, case: str) -> None:
    """CorruptImageBeforeSigning, SingleByteImage, IncorrectPlatform (−): the code signature
    is good, but esp_ota_end() refuses the image (its SHA-256, its size, its chip id):
    `esp_ota_end failed!`, the slot is erased and the board resets; the old image then sees
    the job still in self_test and, at its own version, rejects it (OtaErrSameFirmwareVersion).
    Job FAILED, old image running."""
    file = getattr(aws_images, case)()
    ota_mqtt.prepare()
    result = ota_mqtt.ok(file, expect=Final.OLD)
    assert "AWS_OTA: esp_ota_end failed!" in _log(ota_mqtt, result.mark)


@pytest.mark.parametrize("case", ["same_version", "previous_version"])
def test_version_refused_in_self_test(ota_mqtt: MqttSession, aws_images: AwsImages, case: str) -> None:
    """SameVersion, PreviousVersion (−): the AWS library checks versions only in the new
    image's self-test (handleSelfTestJobDoc: updatedBy against appFirmwareVersion), so the
    image downloads, activates and boots, then rejects itself (`rejected: 0x00000010` same,
    `0x0000000f` downgrade) and resets: the bootloader skips the INVALID slot, old runs."""
    version = aws_images.base_version if case == "same_version" else aws_images.previous_version
    ota_mqtt.prepare()
    result = ota_mqtt.ok(aws_images.file(case, aws_images.app(version), version), expect=Final.OLD)
    code = "0x00000010" if case == "same_version" else "0x0000000f"
    assert any(f'"reason":"rejected: {code}"' in u for u in _updates(ota_mqtt)), _updates(ota_mqtt)
    assert "New image is being rejected" in _log(ota_mqtt, result.mark)


def test_missing_filename(ota_mqtt: MqttSession, aws_images: AwsImages) -> None:
    """MissingFilename: `filepath` is optional in the v3.4.1 job model
    (otaJobDocModelParamStructure: OTA_JOB_PARAM_OPTIONAL) and the ESP32 PAL writes the
    next OTA slot whatever the path, so the update succeeds. (The e2e suite was written
    for the 2019 agent, where the file path was required and the job failed.)"""
    ota_mqtt.prepare()
    greater = aws_images.greater()
    ota_mqtt.ok(aws_images.file("missing_filename", greater.data, greater.version, filepath=None))


def test_malformed_job_document_refused(ota_mqtt: MqttSession, aws_images: AwsImages) -> None:
    """A job document without the required `filesize`: the job parser refuses it
    (OtaJobParseErrNonConformingJobDoc) and reports FAILED `0x0000000c: 0x00000004`
    (OtaErrJobParserError) without touching flash; the old image keeps running."""
    ota_mqtt.prepare()
    greater = aws_images.greater()
    broken = replace(greater, name="no_filesize", entry=replace(greater.entry, filesize=None))
    result = ota_mqtt.ok(broken, expect=Final.OLD)
    assert any('"reason":"0x0000000c: 0x00000004"' in u for u in _updates(ota_mqtt)), _updates(ota_mqtt)
    assert "OtaJobParseErrNonConformingJobDoc" in _log(ota_mqtt, result.mark)


def test_back_to_back(ota_mqtt: MqttSession, aws_images: AwsImages) -> None:
    """BackToBackDownloads (+): two updates in a row, ota_0 → ota_1 → ota_0, each accepted."""
    ota_mqtt.prepare()
    ota_mqtt.ok(aws_images.greater())
    result = ota_mqtt.ok(aws_images.greater(steps=2))
    first_slot = ota_mqtt.board.table.ota_slots[0].name
    assert result.final_ready is not None and result.final_ready.running == first_slot, result.summary()


def test_disconnect_resume(ota_mqtt: MqttSession, aws_images: AwsImages) -> None:
    """DisconnectResume (+): halfway through, the rig connects with the device's client id and
    the broker drops the device. The demo suspends the agent, reconnects, resumes; the same
    job comes back and only the missing blocks are asked for (the bitmap survives)."""
    ota_mqtt.prepare()
    greater = aws_images.greater()
    result = ota_mqtt.ok(greater, "mqtt@fraction=0.5:kick")
    log = _log(ota_mqtt, result.mark)
    assert "Event=[Suspend], New state=[Suspended]" in log and "Event=[Resume]" in log
    assert "New job document ID is identical to the current job" in log
    assert result.bytes_served < 1.3 * len(greater.data), f"re-downloaded: {result.bytes_served} bytes served"


def test_disconnect_cancel_update(ota_mqtt: MqttSession, aws_images: AwsImages) -> None:
    """DisconnectCancelUpdate (−): the device is kicked off mid-stream and the job cancelled
    while it is away; back online it hears of no job, aborts the download and keeps the old
    image. Job CANCELED."""
    ota_mqtt.prepare()
    result = ota_mqtt.ok(aws_images.greater(), ["mqtt@fraction=0.4:kick", "mqtt@fraction=0.4:cancel"],
                         expect=Final.OLD)  # fmt: skip
    assert "No active job available" in _log(ota_mqtt, result.mark)


def test_cancel_then_update(ota_mqtt: MqttSession, aws_images: AwsImages) -> None:
    """CancelThenUpdate (+): a job cancelled mid-stream (CANCELED, old image), then a new job
    for the same update succeeds from a clean start."""
    ota_mqtt.prepare()
    ota_mqtt.ok(aws_images.greater(), "mqtt@fraction=0.3:cancel", expect=Final.OLD)
    ota_mqtt.ok(aws_images.greater())


def test_two_updates_cancel_first(ota_mqtt: MqttSession, aws_images: AwsImages) -> None:
    """2UpdatesCancel1st (+): a second job is queued behind the first; cancelling the first
    mid-stream makes notify-next announce the second, the device drops the first download
    ("New job document received, aborting current job.") and installs the second."""
    ota_mqtt.prepare()
    result = ota_mqtt.ok(aws_images.greater(), "mqtt@fraction=0.3:cancel", then=aws_images.greater(steps=2),
                         statuses=[frozenset({CANCELED}), frozenset({SUCCEEDED})])  # fmt: skip
    assert "aborting current job" in _log(ota_mqtt, result.mark)


@pytest.mark.rollback
def test_rollback_if_unable_to_connect_after_update(ota_mqtt: MqttSession, aws_images: AwsImages) -> None:
    """RollbackIfUnableToConnectAfterUpdate (−): from activation on, the broker refuses the
    device for longer than the bootloader's RTC watchdog. The new image never reaches its
    self-test, the RTC WDT resets it (`rst:0x10 (RTCWDT_RTC_RESET)`), the bootloader aborts the
    PENDING_VERIFY slot, the old image comes back and rejects the job. FAILED, old image."""
    ota_mqtt.prepare()
    wdt_s = LAB_RTC_WDT_S if ota_mqtt.board.farm.virtual else IDF_RTC_WDT_S
    result = ota_mqtt.ok(aws_images.greater(), f'mqtt@log="OtaJobEventActivate":outage={wdt_s + 3:g}s',
                         expect=Final.OLD)  # fmt: skip
    log = _log(ota_mqtt, result.mark)
    assert "RTCWDT_RTC_RESET" in log, "the new image was not reset by the RTC watchdog"


@pytest.mark.power_cut
def test_power_cut_mid_stream(ota_mqtt: MqttSession, aws_images: AwsImages) -> None:
    """Power lost at 50 % of the stream: the job is still IN_PROGRESS, so the rebooted device
    takes it again. The AWS library keeps no file context across a reset (otaPal_CreateFileForRx
    erases the slot again), so it downloads from block 0 — and succeeds."""
    ota_mqtt.prepare()
    ota_mqtt.ok(aws_images.greater(), "power@fraction=0.5")


@pytest.mark.power_cut
@pytest.mark.rollback
def test_power_cut_during_self_test(ota_mqtt: MqttSession, aws_images: AwsImages) -> None:
    """Power lost during the new image's self-test: the bootloader finds it PENDING_VERIFY,
    marks it ABORTED and boots the old one, which sees `self_test: active` from a newer
    version and rejects the job (`rejected: 0x0000000f`). FAILED, old image."""
    ota_mqtt.prepare()
    slow = aws_images.greater(Behaviour.HEALTHY, SLOW_SELFTEST_MS)
    ota_mqtt.ok(slow, 'power@log="OtaJobEventStartTest"', expect=Final.OLD)


@pytest.mark.rollback
@pytest.mark.parametrize("behaviour", BAD_RELEASES, ids=lambda b: b.label)
def test_bad_release_rolls_back(ota_mqtt: MqttSession, aws_images: AwsImages, behaviour: Behaviour) -> None:
    """A signed release that fails its self-test, never finishes it (the library's self-test
    timer resets it) or crashes on boot: the job fails and the old image runs again."""
    ota_mqtt.prepare()
    ota_mqtt.ok(aws_images.greater(behaviour), expect=Final.OLD)


@pytest.mark.network
@pytest.mark.parametrize("cut", ["mqtt@block=5:drop", "mqtt@block=5:duplicate", "mqtt@block=5:reorder",
                                 "mqtt@fraction=0.5:stall=2s", "mqtt@fraction=0.5:restart",
                                 "net@block=10:rst"])  # fmt: skip
def test_stream_faults_survived(ota_mqtt: MqttSession, aws_images: AwsImages, cut: str) -> None:
    """Blocks lost, repeated or out of order, a stream that pauses, a broker restart and a TLS
    connection reset: the bitmap and the request timer recover every one; SUCCEEDED."""
    ota_mqtt.prepare()
    ota_mqtt.ok(aws_images.greater(), cut)


@pytest.mark.network
def test_corrupt_block_refused(ota_mqtt: MqttSession, aws_images: AwsImages) -> None:
    """One block's payload corrupted in flight: the signature check at close refuses the
    file. FAILED (OtaPalSignatureCheckFailed), old image untouched."""
    ota_mqtt.prepare()
    ota_mqtt.ok(aws_images.greater(), "mqtt@block=3:corrupt", expect=Final.OLD)


@pytest.mark.network
def test_stream_that_never_answers(ota_mqtt: MqttSession, aws_images: AwsImages) -> None:
    """The stream stops answering for good: after otaconfigMAX_NUM_REQUEST_MOMENTUM unanswered
    requests the agent aborts (`aborted: …`) and shuts down; the old image keeps running."""
    ota_mqtt.prepare()
    result = ota_mqtt.ok(aws_images.greater(), "mqtt@block=4:stall=forever", expect=Final.OLD)
    assert "OTA Agent is shutting down." in _log(ota_mqtt, result.mark)

