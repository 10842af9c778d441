"""JUnit XML for CI: one testcase per outcome; INFRA is an error, FAIL/BRICK failures, SKIP and
INCONCLUSIVE skipped (the latter with its reason, prefixed `INCONCLUSIVE:`).

Keeping INFRA as `<error>` lets CI dashboards tell "the rig broke" from "the firmware broke".
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from rig.results.model import Outcome, OutcomeClass, RunInfo


def _detail(outcome: Outcome) -> str:
    lines = [
        f"expected: {outcome.expected}",
        f"observed: {outcome.observed}",
        f"phase: {outcome.phase}",
        f"image: {outcome.image} ({outcome.firmware_old} -> {outcome.firmware_new})",
    ]
    if outcome.fault:
        lines.append(f"fault: {outcome.fault}")
    lines.append(f"artifacts: {outcome.artifacts}")
    return "\n".join(lines)


# What XML 1.0 cannot carry (C0 controls but tab, newline, carriage return; lone surrogates;
# U+FFFE/U+FFFF): a serial line of garbage in a message must not make junit.xml unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _strip_controls(root: ET.Element) -> None:
    for element in root.iter():
        element.attrib = {key: _NOT_XML.sub("", value) for key, value in element.attrib.items()}
        if element.text:
            element.text = _NOT_XML.sub("", element.text)


def render_junit(run: RunInfo, outcomes: Sequence[Outcome]) -> bytes:
    """The junit.xml document of a run."""
    counts = {cls: sum(1 for o in outcomes if o.outcome is cls) for cls in OutcomeClass}
    suites = ET.Element("testsuites", name=f"ota-rig {run.run_id}")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"ota-rig.{run.run_id}",
        tests=str(len(outcomes)),
        failures=str(counts[OutcomeClass.FAIL] + counts[OutcomeClass.BRICK]),
        errors=str(counts[OutcomeClass.INFRA]),
        skipped=str(counts[OutcomeClass.SKIP] + counts[OutcomeClass.INCONCLUSIVE]),
        time=f"{sum(o.duration_s for o in outcomes):.3f}",
        timestamp=run.started_at,
    )
    for outcome in outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{outcome.scenario_group}.{outcome.board}",
            name=outcome.scenario,
            time=f"{outcome.duration_s:.3f}",
        )
        if outcome.outcome in (OutcomeClass.FAIL, OutcomeClass.BRICK):
            child = ET.SubElement(case, "failure", message=outcome.message, type=outcome.outcome.value)
            child.text = _detail(outcome)
        elif outcome.outcome is OutcomeClass.INFRA:
            child = ET.SubElement(case, "error", message=outcome.message, type="INFRA")
            child.text = _detail(outcome)
        elif outcome.outcome is OutcomeClass.SKIP:
            ET.SubElement(case, "skipped", message=outcome.message)
        elif outcome.outcome is OutcomeClass.INCONCLUSIVE:
            ET.SubElement(case, "skipped", message=f"INCONCLUSIVE: {outcome.message}", type="INCONCLUSIVE")
        ET.SubElement(case, "system-out").text = _detail(outcome)
    _strip_controls(suites)
    ET.indent(suites)
    document: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return document
