"""Demo plants for the simulated fleet: registered once, found again on the next start."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from pms_common import timeutil
from pms_registry import Registry
from pms_registry.provisioning import FactoryRow

_SITES = [
    ("東京都江東区青海2-7-4", "03-5500-0101", 35.619, 139.779),
    ("大阪府大阪市住之江区南港北1-14-16", "06-6612-0202", 34.639, 135.413),
    ("福岡県福岡市博多区博多駅前2-1-1", "092-473-0303", 33.590, 130.420),
    ("北海道札幌市中央区北1条西2", "011-211-0404", 43.062, 141.354),
    ("宮城県仙台市青葉区国分町3-7-1", "022-261-0505", 38.268, 140.872),
    ("愛知県名古屋市中区三の丸3-1-1", "052-961-0606", 35.181, 136.906),
    ("広島県広島市中区基町10-52", "082-228-0707", 34.396, 132.459),
    ("鹿児島県鹿児島市鴨池新町10-1", "099-286-0808", 31.560, 130.558),
]


def gateway_id(index: int) -> str:
    return f"gw-{index:04d}"


def ensure_demo_plants(registry: Registry, count: int, first: int = 1) -> list[str]:
    """Make sure demo plants first..first+count-1 exist, each with its simulated gateway."""
    registry.migrate()
    bound = {gw.gateway_id: gw.service_code for gw in registry.list_gateways()}
    gateway_ids = []
    for index in range(first, first + count):
        gw = gateway_id(index)
        gateway_ids.append(gw)
        if bound.get(gw):
            continue
        address, phone, lat, lon = _SITES[(index - 1) % len(_SITES)]
        customer_id = f"C{(index - 1) // 2 + 1:05d}"  # two plants per demo customer
        registry.ensure_customer(customer_id, f"デモ発電事業者 {customer_id}")
        code = registry.create_plant(
            customer_id=customer_id, name=f"デモ太陽光発電所 {index}", address=address, phone=phone,
            latitude=lat, longitude=lon, capacity_kw=4.0 + index % 5, tariff_yen_per_kwh=16.0,
            created_at=timeutil.now_jst(),
        )
        registry.bind_gateway(gw, code)
    return gateway_ids


@dataclass(frozen=True)
class DemoFactoryGateway:
    """What a simulated gateway left the factory with: its label's serial and claim code, its secret."""

    serial: str
    factory_secret: str
    claim_code: str


def demo_serial(index: int) -> str:
    # The provisioning rule names the gateway `gw-` + its lower-cased serial: serial 0001 is gw-0001, the
    # id the demo's plants were bound to before the claim flow existed, so their history stays theirs.
    return f"{index:04d}"


def ensure_demo_factory(registry: Registry, var_dir: Path, count: int, first: int = 1) -> list[DemoFactoryGateway]:
    """The simulated gateways' factory list, imported into the registry as a manufacturer's list would be.

    Each secret and claim code is derived from one random demo secret kept in var/ (made on the first
    start), so restarts find the same gateways and no list of secrets is written anywhere."""
    path = var_dir / "demo-factory-secret"
    if not path.exists():
        path.write_text(secrets.token_hex(32) + "\n")
        path.chmod(0o600)
    master = bytes.fromhex(path.read_text().strip())
    gateways = []
    for index in range(first, first + count):
        serial = demo_serial(index)
        secret = hmac.new(master, f"factory-secret:{serial}".encode(), hashlib.sha256).hexdigest()
        code = hmac.new(master, f"claim-code:{serial}".encode(), hashlib.sha256).hexdigest()[:10].upper()
        gateways.append(DemoFactoryGateway(serial, secret, code))
    registry.import_factory_gateways([FactoryRow(g.serial, g.factory_secret, g.claim_code) for g in gateways],
                                     timeutil.now_jst())
    return gateways
