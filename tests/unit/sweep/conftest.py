"""A small recorded update, written by hand: what a sweep's replay would report for it."""

from __future__ import annotations

import pytest

from rig.sweep.records import (
    BootFacts,
    EntryHealth,
    Image,
    OpInfo,
    PointFacts,
    RunEnd,
    RunFacts,
    Stage,
    TraceFacts,
)

VALID = (EntryHealth.VALID, EntryHealth.VALID)
SLOT = 0x1D0000


def op(
    index: int,
    kind: str,
    region: str,
    stage: Stage,
    selects: Image | None,
    state: str,
    sv: int = 1,
    address: int = 0,
    line: str = "",
) -> OpInfo:
    return OpInfo(
        index, kind, address, 4096 if kind == "erase" else 32, region, stage, line, selects, state, sv
    )


def update_ops(*, burn_before_confirm: bool = False) -> tuple[OpInfo, ...]:
    """Download 2 sectors, flip otadata (erase + program), first boot's PENDING_VERIFY write,
    the confirm (erase + program), an eFuse burn after it (or, broken, before it)."""
    old, new, up, later = Image.OLD, Image.NEW, Stage.UPDATE, Stage.LATER
    burn = 2 if burn_before_confirm else 1
    return (
        op(0, "erase", "nvs", Stage.PREPARE, old, "VALID"),
        op(1, "erase", "ota_1", up, old, "VALID", address=SLOT),
        op(2, "program", "ota_1", up, old, "VALID", address=SLOT, line="I (80) rig_agent: ota begin"),
        op(3, "erase", "ota_1", up, old, "VALID", address=SLOT + 0x1000),
        op(4, "program", "ota_1", up, old, "VALID", address=SLOT + 0x1000),
        op(5, "erase", "otadata", up, old, "VALID"),
        op(6, "program", "otadata", up, new, "NEW"),
        op(7, "erase", "otadata", later, old, "VALID", sv=burn),
        op(8, "program", "otadata", later, new, "PENDING_VERIFY", sv=burn),
        op(9, "erase", "otadata", later, old, "VALID", sv=burn),
        op(10, "program", "otadata", later, new, "VALID", sv=burn),
        op(11, "efuse", "efuse", later, new, "VALID", sv=2),
    )


def facts(ops: tuple[OpInfo, ...] | None = None, *, rollback: bool = True) -> TraceFacts:
    return TraceFacts(
        ops=ops if ops is not None else update_ops(),
        base_selects=None,
        base_state="",
        old_version="1.0.0",
        new_version="1.0.1",
        old_secure_version=1,
        new_secure_version=2,
        rollback=rollback,
        anti_rollback=True,
        efuse_base=1,
        update_command="ota https://127.0.0.1:1/next",
        fractions=(0.5,),
    )


def run(
    *images: tuple[Image, str],
    end: RunEnd = RunEnd.STEADY,
    retried: bool = False,
    before: int | None = None,
    state_end: str = "VALID",
    efuse_end: int = 1,
    otadata: tuple[EntryHealth, EntryHealth] = VALID,
) -> RunFacts:
    boots = tuple(
        BootFacts(image, "ota_1" if image is Image.NEW else "ota_0", state, "POWERON_RESET")
        for image, state in images
    )
    return RunFacts(
        0, boots, end, retried, len(boots) if before is None else before, state_end, efuse_end, otadata, "log"
    )


def point(
    op_index: int, torn: float | None = None, at_cut: tuple[EntryHealth, EntryHealth] = VALID
) -> PointFacts:
    return PointFacts(op_index, torn, 0, at_cut)


@pytest.fixture
def trace() -> TraceFacts:
    return facts()
