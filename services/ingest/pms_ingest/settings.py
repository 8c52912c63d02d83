from __future__ import annotations

import socket
from typing import ClassVar, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import Field

from pms_common.settings import StoreSettings


class IngestSettings(StoreSettings):
    default_metrics_port: ClassVar[int] = 9102

    # Each replica knows only the batches it stored. Its acks name them (the cumulative point and the
    # ranges stored beyond it), so a broker may deal one gateway's batches out round robin
    # (Mosquitto) without the gateway resending what the other replicas stored. Nothing is lost or
    # counted twice either way.
    share_group: str | None = Field(
        default=None,
        description="subscribe as $share/<group>/... so replicas split the load (Mosquitto's round robin, "
        "EMQX's hash_topic or sticky); not amqtt",
    )
    selective_acks: bool = Field(
        default=True,
        description="name the batches stored beyond the cumulative ack (Ack.stored_ranges); turn off only "
        "while gateways from before contract v1.1 remain, which refuse an ack carrying the field",
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

    # The NATS scale path (docs/scale.md): gateways publish over MQTT to a NATS cluster, which keeps
    # their readings in a JetStream stream; the replicas share one durable pull consumer of it.
    ingest_source: Literal["mqtt", "jetstream"] = Field(
        default="mqtt",
        description="where readings come from: mqtt (subscribe on PMS_MQTT_URL) or jetstream (the stream "
        "PMS_READINGS on PMS_NATS_URL, shared by every replica through the durable consumer pms-ingest)",
    )
    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        description="NATS servers, comma-separated (nats://host:4222,nats://host2:4222); jetstream source only",
    )
    jetstream_replicas: int = Field(
        default=3, ge=1, le=5, description="copies of the PMS_READINGS stream when ingest creates it (1 on one server)"
    )
    jetstream_ack_wait_s: float = Field(
        default=30.0, gt=0,
        description="a batch fetched but not acked within this time is delivered again (to any replica): "
        "what a replica's death costs in delay",
    )
    jetstream_fetch: int = Field(default=500, ge=1, le=10_000, description="messages asked for in one pull")

    def nats_servers(self) -> list[str]:
        """The servers of PMS_NATS_URL without their login (`nats_login` carries it): the client adds the
        servers the cluster advertises, and those never carry a login, so it must not live in the URLs
        (nor reach the logs that name the servers)."""
        return [_without_login(server) for server in self._nats_entries()]

    def nats_login(self) -> tuple[str | None, str | None]:
        """The user and password written in PMS_NATS_URL (the first entry that has one), for every server."""
        for server in self._nats_entries():
            parts = urlsplit(server)
            if parts.username:
                return unquote(parts.username), unquote(parts.password or "")
        return None, None

    def _nats_entries(self) -> list[str]:
        return [server.strip() for server in self.nats_url.split(",") if server.strip()]

    def client_id(self) -> str:
        """The MQTT client id: a persistent session is named by it, so it must be stable and, for
        replicas in a share group, distinct (the host name is the pod name in Kubernetes)."""
        if self.mqtt_client_id:
            return self.mqtt_client_id
        return f"pms-ingest-{socket.gethostname()}" if self.share_group else "pms-ingest"


def _without_login(server: str) -> str:
    parts = urlsplit(server)
    if not parts.username:
        return server
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
