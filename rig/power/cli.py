"""`rig power probe`: check a power driver's wiring before a run trusts it.

There is no farm API to name boards yet, so the driver is given the same way a
farm file would (`--driver` plus its parameters); values are converted to the
parameter's declared type, so `--param channel=2` means the integer 2.
"""

from __future__ import annotations

import click

from rig.errors import InputError
from rig.power import create_driver, driver_names, parameters

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_param(driver: str, text: str) -> tuple[str, object]:
    """`key=value` → (key, value of the type the driver declares for key)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InputError(f"--param {text!r}: expected KEY=VALUE")
    accepted = parameters(driver).get(key)
    if accepted is None:
        return key, raw  # create_driver reports the unknown key with the known ones
    if type(None) in accepted and raw.lower() in ("null", "none"):
        return key, None
    try:
        if bool in accepted:
            if raw.lower() not in _TRUE | _FALSE:
                raise ValueError(raw)
            return key, raw.lower() in _TRUE
        if int in accepted:
            return key, int(raw, 0)
        if float in accepted:
            return key, float(raw)
    except ValueError:
        wanted = "/".join(t.__name__ for t in accepted if t is not type(None))
        raise InputError(f"--param {key}: {raw!r} is not of type {wanted}") from None
    return key, raw


@click.group("power")
def power() -> None:
    """Power drivers: relays, bench PSUs, reset lines, external commands."""


@power.command("probe")
@click.option("--driver", "driver_name", required=True, type=click.Choice(driver_names()))
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Driver parameter (repeatable).")
@click.option(
    "--switch", type=click.Choice(["on", "off", "cycle"]), default=None, help="Also switch the output."
)
def probe(driver_name: str, params: tuple[str, ...], switch: str | None) -> None:
    """Open the driver, optionally switch it, and print what it reports."""
    spec: dict[str, object] = {"driver": driver_name}
    spec.update(parse_param(driver_name, text) for text in params)
    with create_driver(spec) as driver:
        if switch == "on":
            driver.on()
        elif switch == "off":
            driver.off()
        elif switch == "cycle":
            driver.cycle()
        state = driver.is_on()
        amps = driver.measure_current()
        click.echo(driver.describe())
        click.echo(f"cuts power: {'yes' if driver.cuts_power else 'no (reset only)'}")
        click.echo(f"output: {'unknown' if state is None else 'on' if state else 'off'}")
        if amps is not None:
            click.echo(f"current: {amps:.4f} A")
