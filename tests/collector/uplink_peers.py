"""What an Uplink needs besides its broker, for the tests that run it against refusing brokers."""

from __future__ import annotations

from pms_common.messages import CommandRequest, CommandResult, ConfigDesired, ConfigReported, Heartbeat
from pms_common.timeutil import now_jst

# A NATS login that may publish and subscribe on everything but the gateways' ack topics: NATS
# accepts the MQTT login, then answers the ack SUBSCRIBE with 0x80, as it does when it cannot make
# the subscription's consumer in time.
REFUSING_ACK_SUBSCRIPTION = """
authorization {
  users: [
    {user: gw, password: secret, permissions: {subscribe: {allow: [">"], deny: ["pms.v1.gw.*.ack"]}}}
  ]
}
"""


class NoConfig:
    """A gateway whose configuration never changes."""

    def apply_config(self, desired: ConfigDesired) -> ConfigReported | None:
        return None

    def reported_config(self) -> ConfigReported:
        return ConfigReported(version=0, power_interval_s=60, heartbeat_interval_s=30, applied_at=now_jst())


async def no_commands(request: CommandRequest) -> CommandResult:
    """A gateway that runs no command."""
    return CommandResult(correlation_id=request.correlation_id, ok=False, error="none", at=now_jst())


def heartbeat_of(gateway_id: str) -> Heartbeat:
    return Heartbeat(gateway_id=gateway_id, at=now_jst(), uptime_s=1, firmware="test", module_family="sim",
                     read_errors_total=0, outbox_depth=0, power_interval_s=60, heartbeat_interval_s=30)
