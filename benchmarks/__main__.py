"""Run every benchmark (or those named): `python -m benchmarks [bench_ota ...]`.

Each prints `<name>: measured=<x> target=<y> ratio=<x/y>`; a ratio above 1 misses.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(names: list[str]) -> int:
    found = sorted(
        m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_")
    )
    unknown = sorted(set(names) - set(found))
    if unknown:
        print(f"benchmarks: unknown {', '.join(unknown)} (have: {', '.join(found)})", file=sys.stderr)
        return 2
    for name in names or found:
        print(f"== {name}", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
