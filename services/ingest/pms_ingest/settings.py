from __future__ import annotations

import socket
from typing import ClassVar

from pydantic import Field

from pms_common.settings import StoreSettings


class IngestSettings(StoreSettings):
    default_metrics_port: ClassVar[int] = 9102

    # Acks are cumulative per gateway stream and each replica knows only the batches it stored, so
    # the broker must hand all of one gateway's messages to one replica: EMQX with
    # `mqtt.shared_subscription_strategy = hash_topic` (or `sticky`). Mosquitto deals messages out
    # round robin: nothing is lost or counted twice, but acks then advance only through resends.
    share_group: str | None = Field(
        default=None,
        description="subscribe as $share/<group>/... so replicas split the load; needs a broker that "
        "keeps one gateway's messages on one replica (EMQX hash_topic or sticky); not amqtt",
    )
    persistent_session: bool = Field(default=True, description="keep queued readings while ingest is down")
    flush_max_readings: int = Field(
        default=5000, ge=1, description="readings written in one durable step (one transaction or HTTP write) at most"
    )
    flush_linger_s: float = Field(
        default=0.0, ge=0, le=5,
        description="wait this long for more batches before a write; 0 = write what is queued at once "
        "(batches still grow under load: they queue while the previous write runs)",
    )
    max_pending_readings: int = Field(
        default=50_000, ge=1, description="readings received but not yet written before ingest stops reading MQTT"
    )
    store_retry_s: float = Field(default=1.0, gt=0, description="pause after the store failed a write")

    def client_id(self) -> str:
        """The MQTT client id: a persistent session is named by it, so it must be stable and, for
        replicas in a share group, distinct (the host name is the pod name in Kubernetes)."""
        if self.mqtt_client_id:
            return self.mqtt_client_id
        return f"pms-ingest-{socket.gethostname()}" if self.share_group else "pms-ingest"
