"""`aws-ota`: esp-aws-iot's OTA-over-MQTT demo (examples/ota/ota_mqtt/main/ota_demo_core_mqtt.c)
with the AWS OTA library v3.4.1 (source/ota.c, ota_mqtt.c) and the ESP32 PAL (aws_pal.py).

No rig agent: the firmware connects to its built-in broker endpoint as its thing, takes
jobs from AWS IoT Jobs, streams the file in CBOR blocks, checks the ECDSA signature at
close, activates, reboots into the self-test and reports every step as a job status. The
library's event loop (OTA_EventProcessingTask) and the demo's MQTT loop share this one
thread, as MQTT_ProcessLoop() and the agent do on a real board; each transition prints
the library's `Current State=[…], Event=[…], New state=[…]` line.

The first-boot self-test follows the image's behaviour marker (PROTOCOL.md §4): healthy
accepts (the demo's OtaJobEventStartTest), selftest_fail rejects, never_confirm leaves the
library's self-test timer to reset the board, crash_on_boot / hang never get that far.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from rig.esp.marker import Behaviour
from rig.mqtt import protocol as p
from twin.config import AwsOtaSettings, MqttEndpoint
from twin.cpu import Activity, LogLevel, ResetReason
from twin.firmware import register
from twin.firmware.aws_pal import EspPal, ImageState, PalStatus, PlatformState
from twin.firmware.base import AppRuntime, FirmwareModel
from twin.mqtt_link import LinkDown, MqttLink

INFO, WARN, ERROR = LogLevel.INFO, LogLevel.WARN, LogLevel.ERROR
TAG = "AWS_OTA"  # esp-aws-iot ota_config.h: LIBRARY_LOG_NAME
DEMO = "OTA_MQTT_DEMO"  # the demo's demo_config.h
MAX_BACKOFF_S = 5.0

# OtaErr_t values (include/ota.h) that end up in job status reasons.
ERR_JOB_PARSER = 0x0C
ERR_MOMENTUM_ABORT = 0x0E
ERR_DOWNGRADE = 0x0F
ERR_SAME_VERSION = 0x10
ERR_STATE_MISMATCH = 0x11
ERR_USER_ABORT = 0x13
# OtaJobParseErr_t
PARSE_ZERO_SIZE = 3
PARSE_NON_CONFORMING = 4


@dataclass
class FileContext:
    """OtaFileContext_t: the job being received."""

    job_id: str
    stream: str
    size: int
    file_id: int
    signature: bytes | None
    block_size: int
    bitmap: bytearray
    remaining: int


@dataclass
class Agent:
    rt: AppRuntime
    link: MqttLink
    pal: EspPal
    thing: str
    codesign: Path
    version: int
    state: str = "Init"
    file: FileContext | None = None
    momentum: int = 0
    to_receive: int = 0
    request_due: float | None = None
    self_test_due: float | None = None
    requests: int = 0
    shut_down: bool = False
    last_job: str = ""
    settings: AwsOtaSettings = field(default_factory=AwsOtaSettings)
    behaviour: Behaviour = Behaviour.HEALTHY  # the image's first-boot behaviour marker
    wdt_due: float = 0.0  # when the bootloader's RTC watchdog resets the chip (while armed)
    updated_by: int = 0  # the version that ran the update (the job's `updatedBy`)

    def log(self, level: LogLevel, message: str) -> None:
        self.rt.log(level, TAG, message)

    def transition(self, event: str, new: str) -> None:
        self.log(INFO, f"Current State=[{self.state}], Event=[{event}], New state=[{new}]")
        self.state = new

    def status(self, status: p.JobStatus, details: dict[str, str], qos: int = 1) -> None:
        job = self.file.job_id if self.file is not None else self.last_job
        if job:
            self.link.publish(
                p.job_update(self.thing, job), p.StatusUpdate(status, details).encode(), qos=qos
            )

    def start_request_timer(self) -> None:
        self.request_due = time.monotonic() + self.settings.request_wait_ms / 1000


@register
class AwsOtaFirmware(FirmwareModel):
    """The demo app + AWS OTA agent + ESP32 PAL."""

    name = "aws-ota"
    log2_block_size: ClassVar[int | None] = None  # a build with its own CONFIG_LOG2_FILE_BLOCK_SIZE
    pal_class: ClassVar[type[EspPal]] = EspPal  # the OTA PAL it is built with

    def run(self, app: AppRuntime) -> None:
        app.cpu.set_activity(Activity.IDLE)
        app.app_init()
        endpoint = app.config.mqtt
        pal = self.pal_class(app)
        version = p.version32(app.desc.version)
        behaviour = Behaviour(app.marker.behaviour)
        platform = pal.platform_state()
        if platform is PlatformState.PENDING_COMMIT and app.config.rollback:
            pal.rtc_wdt_armed = True  # the bootloader's RTC WDT is still running
        if behaviour is Behaviour.CRASH_ON_BOOT:
            app.panic()
        if behaviour is Behaviour.HANG:
            app.task_wdt_timeout()
        wdt_due = time.monotonic() + app.config.aws_ota.rtc_wdt_ms / 1000
        app.log(INFO, DEMO, "OTA over MQTT demo, Application version " + p.version_text(version))
        if endpoint is None:
            app.log(ERROR, DEMO, "No MQTT broker endpoint built in (CONFIG_MQTT_BROKER_ENDPOINT)")
            self._idle(app, pal, wdt_due)
            return
        link = MqttLink(app.cpu, endpoint)
        settings = app.config.aws_ota
        if self.log2_block_size is not None:
            settings = replace(settings, log2_block_size=self.log2_block_size)
        codesign = Path(endpoint.pki) / "codesign.pem"
        agent = Agent(app, link, pal, endpoint.thing, codesign, version,
                      settings=settings, behaviour=behaviour, wdt_due=wdt_due)  # fmt: skip
        self._connect(agent, endpoint)
        self._start_agent(agent, platform)
        self._loop(agent, endpoint)

    # -- the demo's MQTT side ---------------------------------------------------------------

    def _idle(self, app: AppRuntime, pal: EspPal, wdt_due: float) -> None:
        while True:
            app.cpu.sleep(0.05)
            if pal.rtc_wdt_armed and time.monotonic() >= wdt_due:
                app.cpu.watchdog_reset(ResetReason.RTCWDT_RTC_RESET)

    def _check_wdt(self, agent: Agent) -> None:
        if agent.pal.rtc_wdt_armed and time.monotonic() >= agent.wdt_due:
            agent.rt.cpu.watchdog_reset(ResetReason.RTCWDT_RTC_RESET)

    def _connect(self, agent: Agent, endpoint: MqttEndpoint) -> None:
        """ota_demo_core_mqtt.c:connectToServerWithBackoffRetries(): retry until it works."""
        rt = agent.rt
        backoff = agent.settings.reconnect_backoff_ms / 1000
        while True:
            self._check_wdt(agent)
            rt.log(INFO, DEMO, f"Establishing a TLS session to {endpoint.host}:{endpoint.port}.")
            why = agent.link.connect()
            if why is None:
                break
            rt.log(WARN, DEMO, f"Connection to the broker failed ({why}). Retrying connection with "
                   f"backoff and jitter.")  # fmt: skip
            deadline = time.monotonic() + backoff
            while time.monotonic() < deadline:
                self._check_wdt(agent)
                rt.cpu.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        rt.log(INFO, DEMO, "MQTT connection successfully established with broker.")
        for topic in (p.notify_next(agent.thing), p.next_get_accepted(agent.thing)):
            agent.link.subscribe(topic, qos=1)
        agent.log(INFO, f"Subscribed to MQTT topic: {p.notify_next(agent.thing)}")
        if agent.file is not None:
            agent.link.subscribe(p.stream_data(agent.thing, agent.file.stream), qos=0)

    def _start_agent(self, agent: Agent, platform: PlatformState) -> None:
        """OTA_Init + startHandler: the self-test timer when the platform is in self-test."""
        agent.transition("Start", "RequestingJob")
        if platform is PlatformState.PENDING_COMMIT:
            agent.self_test_due = time.monotonic() + agent.settings.self_test_wait_ms / 1000
        self._request_job(agent)

    def _loop(self, agent: Agent, endpoint: MqttEndpoint) -> None:
        while True:
            self._check_wdt(agent)
            now = time.monotonic()
            if agent.self_test_due is not None and now >= agent.self_test_due:
                agent.log(
                    ERROR,
                    f"Self test failed to complete within {agent.settings.self_test_wait_ms}ms",
                )
                agent.pal.reset()
            try:
                if agent.request_due is not None and now >= agent.request_due and not agent.shut_down:
                    agent.request_due = None
                    self._request_timer(agent)
                message = agent.link.poll(0.02)
                if message is not None and not agent.shut_down:
                    self._dispatch(agent, message.topic, message.payload)
            except LinkDown:
                self._suspend_and_reconnect(agent, endpoint)

    def _suspend_and_reconnect(self, agent: Agent, endpoint: MqttEndpoint) -> None:
        """The demo's loop: MQTT_ProcessLoop failed → OTA_Suspend(), reconnect, OTA_Resume()."""
        rt = agent.rt
        rt.log(ERROR, DEMO, "MQTT_ProcessLoop returned with status = MQTTRecvFailed.")
        agent.link.close()
        if not agent.shut_down:
            agent.transition("Suspend", "Suspended")
            agent.log(INFO, "OTA Agent is suspended.")
        agent.request_due = None
        self._connect(agent, endpoint)
        if not agent.shut_down:
            agent.transition("Resume", "RequestingJob")
            self._request_job(agent)

    # -- the library's handlers -------------------------------------------------------------

    def _request_job(self, agent: Agent) -> None:
        """requestJobHandler(): publish `$next/get`, start the request timer."""
        agent.requests += 1
        agent.link.publish(p.next_get(agent.thing), p.next_get_message(agent.requests, agent.thing), qos=1)
        agent.transition("RequestJobDocument", "WaitingForJob")
        agent.start_request_timer()

    def _request_timer(self, agent: Agent) -> None:
        """otaTimerCallback(OtaRequestTimer): ask again, until the momentum runs out."""
        if agent.momentum >= agent.settings.request_momentum:
            if agent.file is not None:
                self._set_image_state(agent, ImageState.ABORTED, 0)
                agent.pal.abort()
                agent.file = None
            agent.transition("Shutdown", "ShuttingDown")
            agent.log(INFO, "OTA Agent is shutting down.")
            agent.shut_down = True
            return
        agent.momentum += 1
        if agent.state == "WaitingForFileBlock" and agent.file is not None:
            agent.transition("RequestTimer", "RequestingFileBlock")
            self._request_blocks(agent)
        else:
            agent.transition("RequestTimer", "RequestingJob")
            self._request_job(agent)

    def _dispatch(self, agent: Agent, topic: str, payload: bytes) -> None:
        if topic in (p.next_get_accepted(agent.thing), p.notify_next(agent.thing)):
            agent.log(INFO, f"Received job message {topic} size {len(payload)}.")
            self._job_document(agent, payload)
        elif agent.file is not None and topic == p.stream_data(agent.thing, agent.file.stream):
            self._file_block(agent, payload)

    def _job_document(self, agent: Agent, payload: bytes) -> None:
        """processJobHandler() → getFileContextFromJob() → validateAndStartJob()."""
        try:
            document = json.loads(payload)
            execution = document.get("execution") if isinstance(document, dict) else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            agent.log(ERROR, "Invalid JSON document: JSON_Validate returned error: JSONStatus_t=1")
            return
        if not isinstance(execution, dict) or not isinstance(execution.get("jobId"), str):
            agent.log(INFO, "No active job available in received job document: "
                      "OtaJobParseErr_t=OtaJobParseErrNoActiveJobs")  # fmt: skip
            if agent.file is not None:
                agent.log(INFO, "New job document received, aborting current job.")
                agent.pal.abort()
                agent.file = None
            agent.request_due = None
            agent.transition("ReceivedJobDocument", "WaitingForJob")
            agent.momentum = 0  # a platform in self-test now waits for its self-test timer
            return
        job_id = execution["jobId"]
        agent.log(INFO, f"Extracted parameter: [key: value]=[execution.jobId: {job_id}]")
        raw_details = execution.get("statusDetails")
        details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
        if agent.file is not None and job_id == agent.file.job_id:
            agent.log(INFO, "New job document ID is identical to the current job: "
                      "Updating the URL based on the new job document.")  # fmt: skip
            parse = "OtaJobParseErr_t=OtaJobParseErrUpdateCurrentJob"
            agent.log(INFO, f"Update received for current job: {parse}, Job name={job_id}")
            agent.transition("ReceivedJobDocument", "CreatingFile")
            self._init_transfer(agent)
            return
        if agent.file is not None:
            agent.log(INFO, "New job document received, aborting current job.")
            agent.pal.abort()
            agent.file = None
        agent.last_job = job_id
        if "self_test" in details:
            self._self_test_job(agent, job_id, details)
            return
        if agent.pal.platform_state() is PlatformState.PENDING_COMMIT:
            self._platform_selftest_job_not(agent)
            return
        parsed = self._parse_file(agent, execution)
        if parsed is None:
            agent.transition("ReceivedJobDocument", "WaitingForJob")
            return
        agent.log(INFO, "Job document was accepted. Attempting to begin the update.")
        status = agent.pal.create_file()
        if status is not PalStatus.SUCCESS:
            agent.status(p.JobStatus.FAILED, {"reason": f"0x{ERR_JOB_PARSER:08x}: 0x{status.value:08x}"})
            agent.transition("ReceivedJobDocument", "WaitingForJob")
            return
        agent.file = parsed
        agent.log(INFO, f"Job parsing success: OtaJobParseErr_t=OtaJobParseErrNone, Job name={job_id}")
        agent.log(INFO, "Setting OTA data interface.")
        agent.transition("ReceivedJobDocument", "CreatingFile")
        self._init_transfer(agent)

    def _parse_file(self, agent: Agent, execution: dict[str, Any]) -> FileContext | None:
        """The job model's required parameters (otaJobDocModelParamStructure) of file 0."""
        job_id = str(execution["jobId"])
        try:
            afr = execution["jobDocument"]["afr_ota"]
            protocols = afr["protocols"]
            entry = afr["files"][0]
            size, file_id = entry["filesize"], entry["fileid"]
            if not (isinstance(size, int) and isinstance(file_id, int) and isinstance(protocols, list)):
                raise TypeError
        except (KeyError, IndexError, TypeError):
            agent.log(ERROR, "Failed to parse the job document after parsing the job name: "
                      f"OtaJobParseErr_t=OtaJobParseErrNonConformingJobDoc, Job name={job_id}")  # fmt: skip
            agent.status(
                p.JobStatus.FAILED, {"reason": f"0x{ERR_JOB_PARSER:08x}: 0x{PARSE_NON_CONFORMING:08x}"}
            )
            return None
        if size <= 0:
            agent.log(
                ERROR,
                "Parameter check failed: pFileContext->fileSize is 0: File size should be > 0.",
            )
            agent.status(p.JobStatus.FAILED, {"reason": f"0x{ERR_JOB_PARSER:08x}: 0x{PARSE_ZERO_SIZE:08x}"})
            return None
        if "MQTT" not in protocols:
            agent.log(ERROR, "Failed to set OTA data interface: OtaErr_t=OtaErrInvalidDataProtocol, "
                      "aborting current update.")  # fmt: skip
            agent.status(p.JobStatus.FAILED, {"reason": "aborted: 0x0000000d"})
            return None
        signature = None
        sig_text = entry.get(p.SIGNATURE_KEY)
        if isinstance(sig_text, str):
            try:
                signature = p.decode_signature(sig_text)
            except p.ProtocolError:
                agent.log(ERROR, "Failed to decode Base64 data: base64Decode returned error: error=2")
                agent.status(
                    p.JobStatus.FAILED, {"reason": f"0x{ERR_JOB_PARSER:08x}: 0x{PARSE_NON_CONFORMING:08x}"}
                )
                return None
            agent.log(INFO, f"Extracted parameter [ {p.SIGNATURE_KEY}: {sig_text[:32]}... ]")
        for key in ("filepath", "certfile"):
            if isinstance(entry.get(key), str):
                agent.log(INFO, f"Extracted parameter: [key: value]=[{key}: {entry[key]}]")
        block_size = 1 << agent.settings.log2_block_size
        blocks = p.block_count(size, block_size)
        try:
            bitmap = p.full_bitmap(blocks)
        except p.ProtocolError:
            agent.status(
                p.JobStatus.FAILED, {"reason": f"0x{0x17:08x}: 0x00000000"}
            )  # OtaErrFileSizeOverflow
            return None
        stream = afr.get("streamname") if isinstance(afr.get("streamname"), str) else ""
        return FileContext(job_id, stream, size, file_id, signature, block_size, bitmap, blocks)

    def _init_transfer(self, agent: Agent) -> None:
        """initFileHandler(): subscribe to the stream's data topic, then ask for blocks."""
        assert agent.file is not None
        agent.link.subscribe(p.stream_data(agent.thing, agent.file.stream), qos=0)
        agent.momentum = 0
        agent.transition("CreateFile", "RequestingFileBlock")
        self._request_blocks(agent)

    def _request_blocks(self, agent: Agent) -> None:
        """requestFileBlock_Mqtt(): the whole bitmap, `blocks_per_request` blocks wanted."""
        file = agent.file
        assert file is not None
        agent.to_receive = agent.settings.blocks_per_request
        request = p.BlockRequest(file.file_id, file.block_size, 0, bytes(file.bitmap), agent.to_receive)
        topic = p.stream_get(agent.thing, file.stream)
        agent.link.publish(topic, request.encode(), qos=0)
        agent.log(INFO, f"Published to MQTT topic to request the next block: topic={topic}")
        agent.transition("RequestFileBlock", "WaitingForFileBlock")
        agent.start_request_timer()

    def _file_block(self, agent: Agent, payload: bytes) -> None:
        """processDataHandler() → ingestDataBlock()."""
        file = agent.file
        assert file is not None
        try:
            block = p.DataBlock.decode(payload)
        except p.ProtocolError:
            agent.log(ERROR, "Failed to ingest data block, rejecting image: ingestDataBlock returned "
                      "error: OtaErr_t=-4")  # fmt: skip
            self._reject_download(agent, PalStatus.SUCCESS)
            return
        blocks = p.block_count(file.size, file.block_size)
        last_size = file.size - (blocks - 1) * file.block_size
        expected = last_size if block.block_id == blocks - 1 else file.block_size
        if block.file_id != file.file_id or block.block_id >= blocks or len(block.payload) != expected:
            agent.log(ERROR, "Block range check failed: Received a block outside of the expected range: "
                      f"Block index={block.block_id}, Block size={len(block.payload)}")  # fmt: skip
            self._reject_download(agent, PalStatus.SUCCESS)
            return
        byte, bit = block.block_id >> 3, 1 << (block.block_id & 7)
        if not file.bitmap[byte] & bit:
            agent.log(WARN, f"Received a duplicate block: Block index={block.block_id}, "
                      f"Block size={len(block.payload)}")  # fmt: skip
            return
        if agent.pal.write_block(block.block_id * file.block_size, block.payload) < 0:
            agent.log(ERROR, "Failed to ingest received block: iBytesWritten: -1, IngestResult_t=-2")
            self._reject_download(agent, PalStatus.SUCCESS)
            return
        agent.log(
            INFO,
            f"Received valid file block: Block index={block.block_id}, Size={len(block.payload)}",
        )
        file.bitmap[byte] &= ~bit
        file.remaining -= 1
        if file.remaining == 0:
            agent.log(INFO, "Received final block of the update.")
            agent.request_due = None
            self._close(agent)
            return
        agent.log(INFO, f"Number of blocks remaining: {file.remaining}")
        received = blocks - file.remaining
        agent.momentum = 0
        if received == 1 or received % agent.settings.status_every == 0:
            agent.status(p.JobStatus.IN_PROGRESS, {"receive": f"{received}/{blocks}"}, qos=0)
        if agent.to_receive > 1:
            agent.to_receive -= 1
        else:
            agent.transition("ReceivedFileBlock", "RequestingFileBlock")
            self._request_blocks(agent)

    def _close(self, agent: Agent) -> None:
        """ingestDataBlockCleanup() → otaClose → otaPal_CloseFile(), then activation."""
        file = agent.file
        assert file is not None
        result = agent.pal.close_file(file.signature, agent.codesign)
        if result is not PalStatus.SUCCESS:
            agent.log(ERROR, f"Failed to close the OTA file: Error=({result.text}:0x000000)")
            agent.log(ERROR, "Failed to ingest data block, rejecting image: ingestDataBlock returned "
                      "error: OtaErr_t=-3")  # fmt: skip
            self._reject_download(agent, result)
            return
        agent.log(INFO, "Received entire update and validated the signature.")
        agent.status(p.JobStatus.IN_PROGRESS, {"self_test": "ready", "updatedBy": f"0x{agent.version:08x}"})
        agent.transition("ReceivedFileBlock", "WaitingForJob")
        agent.log(INFO, "Closing file: file index=0")
        agent.rt.log(INFO, DEMO, "Received OtaJobEventActivate callback from OTA Agent.")
        agent.pal.activate()

    def _reject_download(self, agent: Agent, close_result: PalStatus) -> None:
        """processDataHandler()'s failure branch: reject the image, FAILED with the PAL's code."""
        agent.pal.set_image_state(ImageState.REJECTED)
        agent.status(p.JobStatus.FAILED, {"reason": f"0x{close_result.value:08x}: 0x00000000"})
        agent.request_due = None
        agent.pal.abort()
        agent.file = None
        agent.transition("ReceivedFileBlock", "WaitingForJob")
        agent.rt.log(INFO, DEMO, "Received OtaJobEventFail callback from OTA Agent.")
        self._request_job(agent)

    def _set_image_state(self, agent: Agent, state: ImageState, reason: int) -> None:
        """setImageStateWithReason() → updateJobStatusFromImageState()."""
        pal_status = agent.pal.set_image_state(state)
        if pal_status is not PalStatus.SUCCESS and state is not ImageState.ABORTED:
            state = ImageState.REJECTED
            reason = reason or (pal_status.value << 24)
        if state is ImageState.TESTING:
            agent.status(
                p.JobStatus.IN_PROGRESS, {"self_test": "active", "updatedBy": f"0x{agent.version:08x}"}
            )
        elif state is ImageState.ACCEPTED:
            previous = agent.updated_by
            agent.status(p.JobStatus.SUCCEEDED, {
                "reason": f"accepted  v{p.version_text(agent.version)}",
                "updatedBy": f"  v{p.version_text(previous)}",
            })  # fmt: skip
        else:
            word = "rejected" if state is ImageState.REJECTED else "aborted"
            agent.status(p.JobStatus.FAILED, {"reason": f"{word}: 0x{reason:08x}"})
        if state is not ImageState.TESTING:
            agent.last_job = ""

    def _platform_selftest_job_not(self, agent: Agent) -> None:
        agent.log(WARN, "Rejecting new image and rebooting:"
                  "The platform is in the self-test state while the job is not.")  # fmt: skip
        agent.pal.reset()

    def _self_test_job(self, agent: Agent, job_id: str, details: dict[str, Any]) -> None:
        """handleSelfTestJobDoc() then inSelfTestHandler(), and the demo's StartTest callback."""
        agent.log(INFO, "In self test mode.")
        updated_by_text = str(details.get("updatedBy", "0"))
        try:
            updated_by = int(updated_by_text, 0)
        except ValueError:
            updated_by = 0
        agent.updated_by = updated_by
        agent.transition("ReceivedJobDocument", "CreatingFile")
        error = None
        if not agent.settings.allow_downgrade:
            if agent.version == updated_by:
                agent.log(WARN, "Application version of the new image is identical to the current image: "
                          "New images are expected to have a higher version number: ")  # fmt: skip
                error = (ERR_SAME_VERSION, "OtaErrSameFirmwareVersion")
            elif agent.version < updated_by:
                agent.log(WARN, "Application version of the new image is lower than the current image: "
                          "New images are expected to have a higher version number.")  # fmt: skip
                error = (ERR_DOWNGRADE, "OtaErrDowngradeNotAllowed")
            else:
                agent.log(INFO, "New image has a higher version number than the current image: "
                          f"New image version={p.version_text(agent.version)}"
                          f", Previous image version={p.version_text(updated_by)}")  # fmt: skip
        if error is not None:
            agent.log(WARN, "New image is being rejected: Application version of the new image is invalid: "
                      f"OtaErr_t={error[1]}")  # fmt: skip
            self._set_image_state(agent, ImageState.REJECTED, error[0])
            agent.rt.log(ERROR, DEMO, "Self-test failed, shutting down OTA Agent.")
            agent.pal.reset()
            return
        agent.log(INFO, "Image version is valid: Begin testing file: File ID=0")
        self._set_image_state(agent, ImageState.TESTING, 0)
        agent.transition("StartSelfTest", "WaitingForJob")
        agent.log(INFO, "Beginning self-test.")
        if agent.pal.platform_state() is not PlatformState.PENDING_COMMIT:
            agent.log(WARN, "Rejecting new image and rebooting:"
                      "The job is in the self-test state while the platform is not.")  # fmt: skip
            self._set_image_state(agent, ImageState.REJECTED, ERR_STATE_MISMATCH)
            agent.pal.reset()
            return
        agent.self_test_due = None
        self._app_self_test(agent)

    def _app_self_test(self, agent: Agent) -> None:
        """The demo's OtaJobEventStartTest callback, with the image's behaviour marker deciding."""
        rt = agent.rt
        rt.log(INFO, DEMO, "Received OtaJobEventStartTest callback from OTA Agent.")
        behaviour = agent.behaviour
        marker = rt.marker
        if behaviour is Behaviour.NEVER_CONFIRM:
            agent.self_test_due = time.monotonic() + agent.settings.self_test_wait_ms / 1000
            return
        if behaviour is Behaviour.SELFTEST_FAIL:
            self._set_image_state(agent, ImageState.REJECTED, 0)
            rt.log(ERROR, DEMO, "Self-test failed, shutting down OTA Agent.")
            agent.pal.reset()
            return
        if behaviour is Behaviour.HEALTHY:
            rt.cpu.sleep(marker.param / 1000)
        self._set_image_state(agent, ImageState.ACCEPTED, 0)
        agent.pal.erase_last_boot_partition()
        if behaviour is Behaviour.CONFIRM_THEN_CRASH:
            rt.cpu.sleep(marker.param / 1000)
            rt.panic()


@register
class AwsOtaMinBlock(AwsOtaFirmware):
    """The demo built with CONFIG_LOG2_FILE_BLOCK_SIZE=8: 256-byte blocks, the smallest AWS
    IoT Streams serves (the AWS OTA end-to-end MinBlockConfig build)."""

    name = "aws-ota-min-block"
    log2_block_size = 8


@register
class AwsOtaMaxBlock(AwsOtaFirmware):
    """The demo built with CONFIG_LOG2_FILE_BLOCK_SIZE=14: 16 KiB blocks, the lab's large-block
    build (the AWS OTA end-to-end MaxBlockConfig case)."""

    name = "aws-ota-max-block"
    log2_block_size = 14
