"""Log line -> action latency of the trigger engine, against the p99 <= 5 ms target.

A reader thread feeds serial-like lines into a LogParser and the TriggerEngine (as
the rig's console reader does); one line in 200 matches an every-time trigger whose
action stands in for "PSU off". Latency = line received (before parsing) -> action done.
Prints percentiles and the ratio to the target; asserts nothing.
"""

from __future__ import annotations

import statistics
import time

from rig.logs.parser import LogParser
from rig.triggers import LogMatches, Trigger, TriggerEngine

TARGET_P99_MS = 5.0
FILLER = "I (12345) esp_image: segment 3: paddr=00030020 vaddr=400d0020 size=1c4d8h (115928) map"
MATCH = "I (29832) esp_image: Verifying image signature..."


def main(lines: int = 100_000) -> None:
    engine = TriggerEngine()
    parser = LogParser()
    cuts: list[int] = []
    engine.add(Trigger(LogMatches(r"esp_image: Verifying"), lambda: cuts.append(1), once=False))
    for extra in range(20):  # a realistic scenario keeps a handful of armed triggers
        engine.add(Trigger(LogMatches(f"never-{extra}"), lambda: None, name=f"idle-{extra}"))
    latencies: list[float] = []
    start = time.perf_counter()
    for i in range(lines):
        line = MATCH if i % 200 == 0 else FILLER
        received = time.monotonic()
        parser.feed(line + "\n", received)
        for firing in engine.on_log_line("dut", line, received):
            latencies.append(firing.latency_ms)
    elapsed = time.perf_counter() - start
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    rate = lines / elapsed
    print(f"lines={lines} firings={len(latencies)} throughput={rate:,.0f} lines/s (parse + engine)")
    print(f"latency p50={p50:.4f} ms p99={p99:.4f} ms max={latencies[-1]:.4f} ms")
    print(f"p99 / target({TARGET_P99_MS} ms) = {p99 / TARGET_P99_MS:.4f}")


if __name__ == "__main__":
    main()
