"""Power drivers by name: a farm file says `{"driver": "scpi-psu", ...params}` and gets a PowerDriver.

A driver's keyword-only `__init__` parameters are its farm-file parameters; the
registry checks names and types against that signature, so a typo in a farm file
is reported by key before any hardware is touched. A new driver is one module
with `@register("name")` plus one import line at the end of this file.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import TypeVar

from rig.errors import InputError
from rig.power.base import Capability, PowerDriver

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


def parameters(name: str) -> dict[str, tuple[type, ...]]:
    """The driver's parameters and the Python types each accepts (None included when optional)."""
    cls = _driver_class(name)
    hints = typing.get_type_hints(cls.__init__)
    found: dict[str, tuple[type, ...]] = {}
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            found[param.name] = _accepted_types(hints[param.name])
    return found


def required_parameters(name: str) -> list[str]:
    cls = _driver_class(name)
    return [
        p.name
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
    ]


def create_driver(spec: Mapping[str, object]) -> PowerDriver:
    """Build the driver a farm-file power spec describes; bad specs raise InputError naming the key."""
    name = spec.get("driver")
    if not isinstance(name, str):
        known = ", ".join(driver_names())
        raise InputError(f"power spec: key 'driver' must name a driver (one of: {known})")
    accepted = parameters(name)
    params: dict[str, object] = {}
    for key, value in spec.items():
        if key == "driver":
            continue
        if key not in accepted:
            raise InputError(
                f"power driver {name!r}: unknown parameter {key!r} (known: {', '.join(sorted(accepted))})"
            )
        params[key] = _checked(name, key, value, accepted[key])
    for key in required_parameters(name):
        if key not in params:
            raise InputError(f"power driver {name!r}: missing parameter {key!r}")
    factory: Callable[..., PowerDriver] = _DRIVERS[name]
    return factory(**params)


def _driver_class(name: str) -> type[PowerDriver]:
    try:
        return _DRIVERS[name]
    except KeyError:
        raise InputError(
            f"power spec: unknown driver {name!r} (known: {', '.join(driver_names())})"
        ) from None


def _accepted_types(hint: object) -> tuple[type, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(t for arg in typing.get_args(hint) for t in _accepted_types(arg))
    if hint is None or hint is type(None):
        return (type(None),)
    if isinstance(hint, type):
        return (hint,)
    raise TypeError(f"power driver parameter type {hint!r} is not a plain type")


def _checked(name: str, key: str, value: object, accepted: tuple[type, ...]) -> object:
    # bool is an int in Python, but `channel: true` in a farm file is a mistake, not channel 1.
    if isinstance(value, bool) and bool not in accepted:
        ok = False
    elif isinstance(value, int) and float in accepted and int not in accepted:
        return float(value)
    else:
        ok = isinstance(value, accepted)
    if not ok:
        wanted = " or ".join("null" if t is type(None) else t.__name__ for t in accepted)
        raise InputError(f"power driver {name!r}: parameter {key!r} must be {wanted}, not {value!r}")
    return value


__all__ = [
    "Capability",
    "PowerDriver",
    "create_driver",
    "driver_names",
    "parameters",
    "register",
    "required_parameters",
]

# Each import registers one driver (kept last: the modules need `register` above).
from rig.power import command, dtr_rts, lcus_relay, numato_relay, scpi_psu  # noqa: E402, F401
