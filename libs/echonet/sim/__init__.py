"""Simulators: a 0x0288 meter, a virtual Wi-SUN module (on a pty), a LAN node. The demo and the tests use them.

The pty and LAN front ends (`pty_module`, `udp_node`) are imported where they are used: they bring
threads and asyncio with them.
"""

from echonet.sim.meter import MeterProfile, SimulatedMeter
from echonet.sim.module import Fault, ModuleConfig, VirtualModule

__all__ = ["Fault", "MeterProfile", "ModuleConfig", "SimulatedMeter", "VirtualModule"]
