"""`rig power probe`: check a power driver's wiring before a run trusts it.

There is no farm API to name boards yet, so the driver is given the same way a
farm file would (`--driver` plus its parameters); values are converted to the
parameter's declared type, so `--param channel=2` means the integer 2.
"""

from __future__ import annotations

import click

from rig.errors import InputError
from rig.power import create_driver, driver_names


def parse_param(text: str) -> tuple[str, object]:
    """`key=value` → (key, text value; `null` for None): the driver's model converts the text
    to the type it declares (`create_driver(..., from_text=True)`), or names the key."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InputError(f"--param {text!r}: expected KEY=VALUE")
    return key, None if raw.lower() in ("null", "none") else raw


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
    spec.update(parse_param(text) for text in params)
    with create_driver(spec, from_text=True) as driver:
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
