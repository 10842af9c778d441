"""The firmware a board runs decides how the rig talks to it: one Agent per protocol.

A new kind of firmware is one module with an `Agent` and one line in `agent_for`.
"""

from __future__ import annotations

from rig.agents.base import Agent, Milestones, Sayings
from rig.agents.idf_example import IdfExampleAgent, wifi_of
from rig.agents.rig_agent import RigAgent
from rig.farm import BoardSpec, FirmwareProtocol


def agent_for(spec: BoardSpec) -> Agent:
    """A fresh agent for the board's firmware (an agent keeps per-board conversation state)."""
    traits = spec.firmware
    if traits.protocol is FirmwareProtocol.IDF_EXAMPLE:
        assert traits.example is not None, "the farm file checks an idf-example board names its example"
        return IdfExampleAgent(traits.example, wifi_of(spec))
    return RigAgent()


__all__ = ["Agent", "Milestones", "Sayings", "agent_for"]
