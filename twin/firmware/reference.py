"""The reference firmware model: firmware_under_test/PROTOCOL.md, to the letter.

Console commands, the status line, the `rig_agent` markers, the behaviour marker's
first-boot self-test and an esp_https_ota agent (advanced_https_ota_example style)
with resumption kept in NVS. The console and the OTA share the one CPU thread:
while an OTA runs, each loop does one `perform` step, then looks at the console.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from dataclasses import dataclass, field

from rig.esp.appdesc import AppDescriptor
from rig.esp.marker import Behaviour
from rig.esp.otadata import OtaState
from rig.esp.versions import compare_versions
from twin.cpu import Activity, LogLevel
from twin.firmware import register
from twin.firmware.base import AppRuntime, FirmwareModel
from twin.firmware.https_ota import HttpsOta, OtaConfig
from twin.ota_ops import Err, EspError

TAG = "rig_agent"
EXAMPLE_TAG = "advanced_https_ota_example"
# `ota failed` steps after which a retry must start from byte 0 (PROTOCOL §3).
FORGETS_PROGRESS = ("finish",)
MAX_LINE = 2048
PROGRESS_EVERY = 64 * 1024
SAVE_EVERY = 4096
_SETTINGS = {"timeout_ms": 5000, "request_size": 0, "resume": "on", "version_check": "on"}


@dataclass
class Agent:
    """Mutable state of one app run."""

    rt: AppRuntime
    ota: HttpsOta | None = None
    ota_status: str = "idle"
    url: str = ""
    next_progress: int = 0
    next_save: int = 0
    crash_at: float | None = None
    settings: dict[str, object] = field(default_factory=dict)

    def log(self, level: LogLevel, message: str, tag: str = TAG) -> None:
        self.rt.log(level, tag, message)

    def ok(self, command: str, details: str = "") -> None:
        self.log(LogLevel.INFO, f"ok {command}{' ' + details if details else ''}")

    def error(self, command: str, reason: str) -> None:
        self.log(LogLevel.ERROR, f"error {command} {reason}")

    def setting(self, key: str) -> object:
        stored = self.rt.nvs.get("ota_config")
        values = dict(_SETTINGS)
        values["timeout_ms"] = self.rt.config.http_timeout_ms
        if isinstance(stored, dict):
            values.update(stored)
        return values[key]


def state_name(rt: AppRuntime) -> str:
    try:
        return rt.ota.get_state_partition(rt.running).name
    except EspError:
        return "NONE"


@register
class ReferenceFirmware(FirmwareModel):
    """PROTOCOL.md v1 on a twin."""

    name = "reference"

    def run(self, app: AppRuntime) -> None:
        app.cpu.set_activity(Activity.IDLE)
        app.app_init()
        agent = Agent(app)
        self._first_boot(agent)
        desc = app.desc
        state = state_name(app)
        agent.log(LogLevel.INFO, f"ready version={desc.version} running={app.running.name} state={state}")
        while True:
            if agent.crash_at is not None and time.monotonic() >= agent.crash_at:
                app.panic()
            if agent.ota is not None:
                self._ota_step(agent)
                line = app.cpu.uart_readline(timeout=0)
            else:
                line = app.cpu.uart_readline(timeout=self._idle_timeout(agent))
            if line is not None:
                self._command(agent, line)

    @staticmethod
    def _idle_timeout(agent: Agent) -> float | None:
        if agent.crash_at is None:
            return None
        return max(0.0, agent.crash_at - time.monotonic())

    # -- first boot (PROTOCOL §4–§5) -------------------------------------------------------

    def _first_boot(self, agent: Agent) -> None:
        rt = agent.rt
        marker = rt.marker
        behaviour = Behaviour(marker.behaviour)
        if behaviour is Behaviour.CRASH_ON_BOOT:
            rt.panic()
        if behaviour is Behaviour.HANG:
            rt.task_wdt_timeout()
        if state_name(rt) != OtaState.PENDING_VERIFY.name:
            return
        agent.log(LogLevel.INFO, f"selftest begin behaviour={behaviour.label}")
        if behaviour is Behaviour.SELFTEST_FAIL:
            agent.log(LogLevel.ERROR, "selftest failed")
            rt.ota.mark_app_invalid_rollback_and_reboot()
            return
        if behaviour is Behaviour.NEVER_CONFIRM:
            return
        if behaviour is Behaviour.HEALTHY:
            rt.cpu.sleep(marker.param / 1000)
        agent.log(LogLevel.INFO, "selftest passed")
        rt.ota.mark_app_valid_cancel_rollback()
        agent.log(LogLevel.INFO, "app confirmed valid")
        if behaviour is Behaviour.CONFIRM_THEN_CRASH:
            agent.crash_at = time.monotonic() + marker.param / 1000

    # -- console ----------------------------------------------------------------------------

    def _command(self, agent: Agent, raw: bytes) -> None:
        text = raw[:MAX_LINE].decode("utf-8", "replace").strip()
        if not text:
            return
        word, _, rest = text.partition(" ")
        handler = {
            "status": self._status, "cert": self._cert, "ota": self._ota, "ota-abort": self._ota_abort,
            "ota-config": self._ota_config, "wifi": self._wifi, "restart": self._restart,
        }.get(word)
        if handler is None:
            agent.error(word, "unknown command")
            return
        handler(agent, rest.strip())

    def _status(self, agent: Agent, _: str) -> None:
        rt = agent.rt
        desc = rt.desc
        boot = rt.ota.get_boot_partition()
        agent.log(
            LogLevel.INFO,
            f"status running={rt.running.name} boot={boot.name if boot else 'none'} version={desc.version} "
            f"secure_version={desc.secure_version} efuse_secure_version={rt.cpu.efuse.secure_version} "
            f"state={state_name(rt)} behaviour={Behaviour(rt.marker.behaviour).label} "
            f"ota={agent.ota_status}",
        )
        agent.ok("status")  # PROTOCOL §1: every command gets exactly one result line

    def _cert(self, agent: Agent, arg: str) -> None:
        try:
            der = base64.b64decode(arg, validate=True)
        except (binascii.Error, ValueError):
            agent.error("cert", "invalid base64")
            return
        if not der:
            agent.error("cert", "empty certificate")
            return
        agent.rt.nvs.set("cert", base64.b64encode(der).decode())
        agent.ok("cert", f"sha256={hashlib.sha256(der).hexdigest()[:16]}")

    def _wifi(self, agent: Agent, arg: str) -> None:
        ssid = arg.split(" ")[0]
        if not ssid:
            agent.error("wifi", "missing ssid")
            return
        agent.ok("wifi", f"ssid={ssid}")

    def _restart(self, agent: Agent, _: str) -> None:
        agent.ok("restart")
        agent.rt.cpu.restart()

    def _ota_config(self, agent: Agent, arg: str) -> None:
        stored = agent.rt.nvs.get("ota_config")
        values: dict[str, object] = dict(stored) if isinstance(stored, dict) else {}
        for pair in arg.split():
            key, _, value = pair.partition("=")
            if key in ("timeout_ms", "request_size") and value.isdigit():
                values[key] = int(value)
            elif key in ("resume", "version_check") and value in ("on", "off"):
                values[key] = value
            else:
                agent.error("ota-config", f"bad setting {pair}")
                return
        agent.rt.nvs.set("ota_config", values)
        shown = " ".join(f"{k}={agent.setting(k)}" for k in _SETTINGS)
        agent.ok("ota-config", shown)

    def _ota_abort(self, agent: Agent, _: str) -> None:
        if agent.ota is not None:
            agent.ota.abort()
            agent.ota = None
            agent.ota_status = "failed"
        agent.rt.nvs.erase("ota_progress")
        agent.ok("ota-abort")

    # -- the OTA agent ----------------------------------------------------------------------

    def _ota(self, agent: Agent, url: str) -> None:
        rt = agent.rt
        if not url.startswith("https://"):
            agent.error("ota", "url must be https://")
            return
        if agent.ota is not None:
            agent.error("ota", "busy")
            return
        agent.ok("ota", f"url={url}")
        resume_from = self._resume_from(agent, url)
        agent.log(LogLevel.INFO, f"ota begin url={url} resume_from={resume_from}")
        cert = rt.nvs.get("cert")
        request_size = int(str(agent.setting("request_size")))
        config = OtaConfig(
            url=url,
            cadata=base64.b64decode(str(cert)) if cert else None,
            timeout_ms=int(str(agent.setting("timeout_ms"))),
            keepalive=rt.config.keepalive,
            partial_http_download=request_size > 0,
            max_http_request_size=request_size,
            ota_resumption=agent.setting("resume") == "on",
            ota_image_bytes_written=resume_from,
        )
        agent.url = url
        agent.ota_status = "running"
        step = "begin"
        try:
            ota = HttpsOta(rt.cpu, rt.net, rt.ota, config)
            agent.ota = ota
            ota.begin()
            if resume_from and ota.received == 0:
                # esp_https_ota_begin() fell back to byte 0 (Range ignored, or 416 to progress
                # saved right before finish): the saved progress no longer means anything.
                rt.nvs.erase("ota_progress")
            step = "image_desc"
            desc = ota.get_img_desc()
            agent.log(
                LogLevel.INFO,
                f"ota image version={desc.version} secure_version={desc.secure_version}"
                f" project={desc.project_name}",
            )
            if self._rejected(agent, desc):
                return
            agent.next_progress = ota.received + PROGRESS_EVERY
            agent.next_save = (ota.received // SAVE_EVERY + 1) * SAVE_EVERY
        except EspError as exc:
            self._failed(agent, exc, step)

    def _resume_from(self, agent: Agent, url: str) -> int:
        """The byte count saved in NVS for this URL, when resumption is on (PROTOCOL §3)."""
        if agent.setting("resume") != "on":
            # Settings first: with resumption off the saved progress is never looked at, so a
            # sweep's replay knows this run does not depend on it (twin/sweep/device.py).
            return 0
        saved = agent.rt.nvs.get("ota_progress")
        if isinstance(saved, dict) and saved.get("url") == url:
            return int(str(saved.get("bytes", 0)))
        return 0

    @staticmethod
    def _order(new: str, running: str) -> int | None:
        """PROTOCOL.md §6 order of two versions (the C core's `rig_version_compare`)."""
        return compare_versions(new, running)

    def _rejected(self, agent: Agent, desc: AppDescriptor) -> bool:
        """PROTOCOL §3 version check on the descriptor, before anything is written."""
        rt = agent.rt
        running = rt.desc.version
        reason = None
        fuse = rt.cpu.efuse.secure_version
        if agent.setting("version_check") == "on":
            order = self._order(desc.version, running)
            if order == 0:
                agent.log(
                    LogLevel.WARN,
                    "Current running version is the same as a new. We will not continue the update.",
                    EXAMPLE_TAG,
                )
                reason = "same_version"
            elif (order or 0) < 0:
                reason = "older_version"
            elif rt.config.anti_rollback and desc.secure_version < fuse:
                agent.log(
                    LogLevel.ERROR,
                    "New firmware security version is less than eFuse programmed, "
                    f"{desc.secure_version} < {fuse}",
                    EXAMPLE_TAG,
                )
                reason = "lower_secure_version"
        if reason is None:
            return False
        agent.log(LogLevel.WARN, f"ota rejected reason={reason} new={desc.version} running={running}")
        if agent.ota is not None:
            agent.ota.abort()
        agent.ota = None
        agent.ota_status = "failed"
        return True

    def _ota_step(self, agent: Agent) -> None:
        ota = agent.ota
        assert ota is not None
        step = "download"
        try:
            try:
                if ota.perform():
                    self._progress(agent, ota)
                    return
                perform_error = None
            except EspError as exc:
                perform_error = exc
            self._progress(agent, ota)
            if not ota.is_complete_data_received():
                # advanced_https_ota_example: the perform loop ended short of the image.
                agent.log(LogLevel.ERROR, "Complete data was not received.", EXAMPLE_TAG)
                step = "incomplete" if perform_error is None else "download"
                raise perform_error or EspError(Err.ESP_FAIL)
            step = "finish"
            self._finish(agent, ota)
        except EspError as exc:
            self._failed(agent, exc, step)
            return
        rt = agent.rt
        rt.nvs.erase("ota_progress")
        agent.log(LogLevel.INFO, f"ota complete bytes={ota.received}")
        agent.ota = None
        agent.ota_status = "done"
        agent.log(LogLevel.INFO, "ESP_HTTPS_OTA upgrade successful. Rebooting ...", EXAMPLE_TAG)
        agent.log(LogLevel.INFO, "ota restarting")
        rt.cpu.restart()

    def _finish(self, agent: Agent, ota: HttpsOta) -> None:
        """esp_https_ota_finish: verify (esp_ota_end), then switch the boot partition."""
        ota.finish()

    def _progress(self, agent: Agent, ota: HttpsOta) -> None:
        total = ota.image_length or 0
        done = ota.received
        if done >= agent.next_save and ota.handle is not None:
            saved = done // 1024 * 1024
            agent.rt.nvs.set("ota_progress", {"url": agent.url, "bytes": saved})
            agent.log(LogLevel.INFO, f"ota saved bytes={saved}")
            agent.next_save = (done // SAVE_EVERY + 1) * SAVE_EVERY
        if done >= agent.next_progress or (total and done >= total):
            agent.log(LogLevel.INFO, f"ota progress bytes={done} total={total}")
            agent.next_progress = (done // PROGRESS_EVERY + 1) * PROGRESS_EVERY
            if total and done >= total:
                agent.next_progress = total + 1

    def _failed(self, agent: Agent, exc: EspError, step: str) -> None:
        """PROTOCOL §2 `ota failed`: `reason` names the step that failed. Progress is kept
        for a retry unless the image itself failed (PROTOCOL.md §3)."""
        if step in FORGETS_PROGRESS:
            agent.rt.nvs.erase("ota_progress")
        if agent.ota is not None:
            agent.ota.abort()
        agent.ota = None
        agent.ota_status = "failed"
        if exc.err.name == "ESP_ERR_OTA_VALIDATE_FAILED":
            agent.log(LogLevel.ERROR, "Image validation failed, image is corrupted", EXAMPLE_TAG)
        agent.log(LogLevel.ERROR, f"ESP_HTTPS_OTA upgrade failed {exc.hex}", EXAMPLE_TAG)
        agent.log(LogLevel.ERROR, f"ota failed err=0x{exc.err.value & 0xFFFFFFFF:x} reason={step}")
