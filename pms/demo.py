"""Demo plants for the simulated fleet: registered once, found again on the next start."""

from __future__ import annotations

from pms_common import timeutil
from pms_registry import Registry

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
