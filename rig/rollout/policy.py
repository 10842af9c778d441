"""The rollout policy file: how one update goes out to a group of boards.

Rate, abort and timeout settings carry the names and meaning of an AWS IoT job's
`jobExecutionsRolloutConfig`, `abortConfig` and `timeoutConfig`, so a policy tried on the
farm reads like the job a fleet will get:

    name: staged
    transport: https                  # https (the rig agent's `ota <url>`) | mqtt (AWS IoT job)
    release: next                     # https: an image of the set; mqtt: greater
    rollout:
      maximum_per_minute: 120
      exponential_rate: {base_rate_per_minute: 30, increment_factor: 2,
                         rate_increase_criteria: {number_of_succeeded_things: 2}}
    abort:
      - {failure_type: ALL, min_number_of_executed_things: 4, threshold_percentage: 25}
    timeout_per_board: 90s
    late_joiners: {boards: 1, after_dispatched: 4}
    faults:
      seed: 7
      spread:
        - {boards: 2, cut: "power@random=0.2..0.8"}
        - {boards: 1, firmware: corrupt-write}     # a twin of the rollout's own lab, built broken

Every mistake is one line naming the file, line and key.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rig.cutspec import CutSpec, parse_cut
from rig.errors import InputError
from rig.units import parse_duration
from rig.yamlfile import YamlDocument, load_yaml, validate

DEFAULT_TIMEOUT_S = 120.0


class Transport(enum.Enum):
    HTTPS = "https"
    MQTT = "mqtt"


class FailureType(enum.Enum):
    """AWS IoT `JobExecutionFailureType`: which finished executions an abort criterion counts."""

    FAILED = "FAILED"  # includes rolled back and bricked: the update did not take
    REJECTED = "REJECTED"
    TIMED_OUT = "TIMED_OUT"
    ALL = "ALL"


@dataclass(frozen=True)
class ExponentialRate:
    """AWS `exponentialRate`: start at `base_per_minute`; each time `every` more boards were
    notified (or succeeded, `on_success`), multiply the rate by `factor`."""

    base_per_minute: float
    factor: float
    every: int
    on_success: bool


@dataclass(frozen=True)
class AbortCriterion:
    """AWS `AbortCriteria` with action CANCEL: once `min_executed` boards have finished,
    abort when `threshold_percent` % or more of them ended in a failure of `failure_type`."""

    failure_type: FailureType
    min_executed: int
    threshold_percent: float

    def describe(self) -> str:
        what = "failed" if self.failure_type is FailureType.ALL else self.failure_type.value
        return f"{what} >= {self.threshold_percent:g} % of at least {self.min_executed} finished"


@dataclass(frozen=True)
class FaultShare:
    """`boards` boards of the group get this fault: a cut (any `--cut` spec) or a firmware
    model their twin runs instead of the faithful one (only in the lab `rig rollout` builds)."""

    boards: int
    cut: CutSpec | None = None
    firmware: str | None = None

    @property
    def label(self) -> str:
        if self.cut is not None:
            return self.cut.text
        return f"firmware {self.firmware}"


@dataclass(frozen=True)
class RolloutPolicy:
    name: str
    transport: Transport
    release: str
    maximum_per_minute: float | None = None
    exponential: ExponentialRate | None = None
    abort: tuple[AbortCriterion, ...] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S
    late_joiners: int = 0
    join_after: int = 0  # boards dispatched before the late joiners are added
    fault_seed: int | None = None
    faults: tuple[FaultShare, ...] = field(default_factory=tuple)

    @property
    def needs_lab(self) -> bool:
        """Some share swaps a board's firmware model: only a virtual lab can do that."""
        return any(share.firmware is not None for share in self.faults)


# -- the file as written ----------------------------------------------------------------------

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=1)]


class _RateIncrease(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    number_of_notified_things: Count | None = None
    number_of_succeeded_things: Count | None = None

    @model_validator(mode="after")
    def _one(self) -> _RateIncrease:
        if (self.number_of_notified_things is None) == (self.number_of_succeeded_things is None):
            raise ValueError("give exactly one of number_of_notified_things, number_of_succeeded_things")
        return self


class _Exponential(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    base_rate_per_minute: Positive
    increment_factor: Annotated[float, Field(ge=1.1, le=5.0, allow_inf_nan=False)]  # AWS's range
    rate_increase_criteria: _RateIncrease


class _Rollout(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    maximum_per_minute: Positive | None = None
    exponential_rate: _Exponential | None = None


class _Abort(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    failure_type: Literal["FAILED", "REJECTED", "TIMED_OUT", "ALL"]
    min_number_of_executed_things: Count
    threshold_percentage: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]
    action: Literal["CANCEL"] = "CANCEL"


class _Share(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    boards: Count
    cut: str | None = None
    firmware: str | None = None

    @model_validator(mode="after")
    def _one(self) -> _Share:
        if (self.cut is None) == (self.firmware is None):
            raise ValueError("give exactly one of cut, firmware")
        return self


class _Faults(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    seed: int | None = None
    spread: list[_Share] = Field(default_factory=list)


class _LateJoiners(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    boards: Count
    after_dispatched: Annotated[int, Field(ge=0)] = 0


class _PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    transport: Literal["https", "mqtt"] = "https"
    release: str | None = None
    rollout: _Rollout = Field(default_factory=_Rollout)
    abort: list[_Abort] = Field(default_factory=list)
    timeout_per_board: str | float = DEFAULT_TIMEOUT_S
    late_joiners: _LateJoiners | None = None
    faults: _Faults = Field(default_factory=_Faults)


def load_rollout_policy(path: Path) -> RolloutPolicy:
    """Parse and check a rollout policy file (one InputError line for any mistake)."""
    return parse_rollout_policy(load_yaml(path, "rollout policy"))


def parse_rollout_policy(document: YamlDocument) -> RolloutPolicy:
    if not isinstance(document.data, dict):
        raise document.error((), "a rollout policy must be a mapping (name, transport, rollout, abort, …)")
    parsed = validate(_PolicyFile, document)
    transport = Transport(parsed.transport)
    try:
        timeout = parse_duration(parsed.timeout_per_board)
    except ValueError as error:
        raise document.error(("timeout_per_board",), str(error)) from None
    shares = tuple(_share(document, index, share) for index, share in enumerate(parsed.faults.spread))
    exponential = None
    if parsed.rollout.exponential_rate is not None:
        rate = parsed.rollout.exponential_rate
        criteria = rate.rate_increase_criteria
        exponential = ExponentialRate(
            base_per_minute=rate.base_rate_per_minute,
            factor=rate.increment_factor,
            every=criteria.number_of_succeeded_things or criteria.number_of_notified_things or 1,
            on_success=criteria.number_of_succeeded_things is not None,
        )
    late = parsed.late_joiners
    return RolloutPolicy(
        name=parsed.name,
        transport=transport,
        release=parsed.release or ("next" if transport is Transport.HTTPS else "greater"),
        maximum_per_minute=parsed.rollout.maximum_per_minute,
        exponential=exponential,
        abort=tuple(
            AbortCriterion(
                FailureType(a.failure_type), a.min_number_of_executed_things, a.threshold_percentage
            )
            for a in parsed.abort
        ),
        timeout_s=timeout,
        late_joiners=late.boards if late else 0,
        join_after=late.after_dispatched if late else 0,
        fault_seed=parsed.faults.seed,
        faults=shares,
    )


def _share(document: YamlDocument, index: int, share: _Share) -> FaultShare:
    if share.cut is None:
        return FaultShare(share.boards, firmware=share.firmware)
    try:
        cut = parse_cut(share.cut)
    except InputError as error:
        raise document.error(("faults", "spread", index, "cut"), str(error)) from None
    return FaultShare(share.boards, cut=cut)


def check_group(policy: RolloutPolicy, boards: int, *, own_lab: bool, where: str) -> None:
    """The group must hold every fault share and late joiner; firmware swaps need the lab the
    rollout builds itself (a running lab's or a real board's firmware is what was flashed)."""
    faulted = sum(share.boards for share in policy.faults)
    if faulted > boards:
        raise InputError(f"{where}: the faults name {faulted} boards but the group has {boards}")
    if policy.late_joiners >= boards:
        raise InputError(f"{where}: {policy.late_joiners} late joiners leave no board to start the rollout")
    if policy.needs_lab and not own_lab:
        raise InputError(
            f"{where}: a `firmware:` fault builds twins with another firmware model, which only the lab "
            "`rig rollout` brings up itself (without --farm) can do"
        )
