"""Registry of firmware models: model name -> class.

A board config names the model per image project (`firmware`, `firmware_overrides`);
`register` adds a user's own model (one file, see twin/README.md).
"""

from __future__ import annotations

from rig.errors import InputError
from twin.firmware.base import AppRuntime, FirmwareModel

_MODELS: dict[str, type[FirmwareModel]] = {}


def register(model: type[FirmwareModel]) -> type[FirmwareModel]:
    """Class decorator: make `model` selectable by its `name`."""
    _MODELS[model.name] = model
    return model


def get_model(name: str) -> type[FirmwareModel]:
    import twin.firmware.advanced_https_ota
    import twin.firmware.aws_ota
    import twin.firmware.broken
    import twin.firmware.native_ota
    import twin.firmware.simple_ota  # noqa: F401

    try:
        return _MODELS[name]
    except KeyError:
        raise InputError(f"unknown firmware model {name!r} (known: {', '.join(sorted(_MODELS))})") from None


__all__ = ["AppRuntime", "FirmwareModel", "get_model", "register"]
