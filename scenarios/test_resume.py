"""Reset mid-download, then resume with Range; full-download fallback without Range support."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from rig.net.ota_server import ServeMode
from rig.phase import Phase
from rig.session import OtaSession
from scenarios._support import assert_log, ended_on, need_agent

pytestmark = [pytest.mark.network, pytest.mark.gate]
RESUMED = re.compile(r"rig_agent: ota begin url=\S+ resume_from=(\d+)")


@pytest.fixture
def no_range(ota: OtaSession) -> Iterator[None]:
    """The rig's server ignores Range (200, whole image) for this test only."""
    before = ota.server.mode
    ota.server.mode = ServeMode(range_support=False, chunked=before.chunked,
                                redirect_status=before.redirect_status, record_size=before.record_size)
    try:
        yield
    finally:
        ota.server.mode = before


def _resumed_from(ota: OtaSession, mark: int) -> int:
    found = ota.board.console.wait_for(RESUMED, 0.0, mark)
    assert found is not None, "no `ota begin` marker"
    return int(found[1])


def test_resume_after_reset(ota: OtaSession) -> None:
    """Field failure: a device reset mid-download re-downloads everything (or resumes wrongly).

    Fault: power cut (or reset) at 60 % of the image, then the same URL again. Correct
    outcome (ESP-IDF 5.x resumption): the saved progress is sent as `Range:
    bytes=<saved>-`, the agent logs `ota begin ... resume_from=<saved>` (> 0, whole KiB)
    and only the rest of the image crosses the wire; the resumed image verifies and boots.
    """
    need_agent(ota, "resume-markers")
    ota.prepare(resume="on")
    size = ota.images.entry("next").path.stat().st_size
    cut = ota.ok("next", "power@fraction=0.6", window=Phase.DOWNLOAD)
    ended_on(cut, ota.images.base_version)
    result = ota.ok("next")
    saved = _resumed_from(ota, result.mark)
    assert saved > 0 and saved % 1024 == 0, f"resume_from={saved}"
    ranged = [r for r in ota.server.records if r.range_header == f"bytes={saved}-"]
    assert ranged and ranged[-1].status == 206, [(r.range_header, r.status) for r in ota.server.records[-3:]]
    assert result.bytes_served < size, f"{result.bytes_served} bytes served for a resumed {size}-byte image"
    ended_on(result, ota.images.entry("next").version)


def test_fallback_without_range(ota: OtaSession, no_range: None) -> None:
    """Field failure: a CDN/server that ignores Range makes a resuming device write garbage.

    Fault: power cut at 60 %, then a retry against a server that answers 200 with the
    whole image. Correct outcome (ESP-IDF 5.5): `W esp_https_ota: Server ignored the
    requested Range header` then `Falling back to OTA without resumption and restarting
    download from beginning`; the full image is downloaded and boots.
    """
    need_agent(ota, "resume-markers")
    ota.prepare(resume="on")
    size = ota.images.entry("next").path.stat().st_size
    cut = ota.ok("next", "power@fraction=0.6", window=Phase.DOWNLOAD)
    ended_on(cut, ota.images.base_version)
    result = ota.ok("next")
    assert _resumed_from(ota, result.mark) > 0
    assert_log(ota, result, "Server ignored the requested Range header",
               "Falling back to OTA without resumption and restarting download from beginning")
    assert result.bytes_served >= size, f"only {result.bytes_served} of {size} bytes after the fallback"
    ended_on(result, ota.images.entry("next").version)
