"""Power drivers by name: a farm file says `{"driver": "scpi-psu", ...params}` and gets a PowerDriver.

A driver's keyword-only `__init__` parameters are its farm-file parameters; the
registry builds a pydantic model from that signature (types, defaults, `Annotated`
bounds), so a typo or a wrong value in a farm file is reported by key when the farm
file loads, before any hardware is touched. A new driver is one module
with `@register("name")` plus one import line at the end of this file.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from rig.errors import InputError
from rig.power.base import Capability, PowerDriver
from rig.yamlfile import plain_message

_DRIVERS: dict[str, type[PowerDriver]] = {}

D = TypeVar("D", bound=type[PowerDriver])


def register(name: str) -> Callable[[D], D]:
    """Class decorator: make a driver creatable as `{"driver": name, ...}`."""

    def decorate(cls: D) -> D:
        if name in _DRIVERS:
            raise ValueError(f"power driver {name!r} registered twice")
        cls.name = name
        _DRIVERS[name] = cls
        return cls

    return decorate


def driver_names() -> list[str]:
    return sorted(_DRIVERS)


def parameters(name: str) -> dict[str, object]:
    """The driver's parameters and their type hints."""
    cls = _driver_class(name)
    hints = typing.get_type_hints(cls.__init__, include_extras=True)
    return {
        p.name: hints[p.name]
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def required_parameters(name: str) -> list[str]:
    cls = _driver_class(name)
    return [
        p.name
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
    ]


@functools.cache
def _model(name: str) -> type[BaseModel]:
    """A strict pydantic model of the driver's keyword-only `__init__` parameters."""
    cls = _driver_class(name)
    hints = typing.get_type_hints(cls.__init__, include_extras=True)
    fields: dict[str, Any] = {}
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (hints[param.name], default)
    config = ConfigDict(extra="forbid", strict=True)
    return create_model(f"{cls.__name__}Parameters", __config__=config, **fields)


def validate_parameters(
    name: str, params: Mapping[str, object], *, from_text: bool = False, partial: bool = False
) -> tuple[str | None, str] | None:
    """The first problem with `params` for driver `name` as (key, message), None when fine.
    `from_text`: values typed on a command line, converted to the declared types; `partial`:
    only the keys given are checked (an instrument section, which boards complete)."""
    try:
        _model(name).model_validate(dict(params), strict=not from_text)
    except ValidationError as error:
        errors = [e for e in error.errors() if not (partial and e["type"] == "missing")]
        if not errors:
            return None
        # A misspelt key also leaves the real one missing: name the misspelling.
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        key = str(first["loc"][0]) if first["loc"] else None
        if first["type"] == "extra_forbidden":
            return key, f"unknown parameter (known: {', '.join(parameters(name))})"
        return key, plain_message(first)
    return None


def create_driver(spec: Mapping[str, object], *, from_text: bool = False) -> PowerDriver:
    """Build the driver a farm-file power spec describes; bad specs raise InputError naming the key."""
    name = spec.get("driver")
    if not isinstance(name, str) or name not in _DRIVERS:
        known = ", ".join(driver_names())
        raise InputError(f"power spec: key 'driver' must name a driver (one of: {known}), not {name!r}")
    params = {key: value for key, value in spec.items() if key != "driver"}
    problem = validate_parameters(name, params, from_text=from_text)
    if problem is not None:
        key, message = problem
        where = f"power driver {name!r}" + (f": parameter {key!r}" if key else "")
        raise InputError(f"{where}: {message}")
    validated = _model(name).model_validate(params, strict=not from_text)
    factory: Callable[..., PowerDriver] = _DRIVERS[name]
    return factory(**{key: getattr(validated, key) for key in params})


def _driver_class(name: str) -> type[PowerDriver]:
    try:
        return _DRIVERS[name]
    except KeyError:
        raise InputError(
            f"power spec: unknown driver {name!r} (known: {', '.join(driver_names())})"
        ) from None


__all__ = [
    "Capability",
    "PowerDriver",
    "create_driver",
    "driver_names",
    "parameters",
    "register",
    "required_parameters",
    "validate_parameters",
]

# Each import registers one driver (kept last: the modules need `register` above).
from rig.power import command, dtr_rts, labgrid_power, lcus_relay, numato_relay, scpi_psu  # noqa: E402, F401
