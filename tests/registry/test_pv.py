"""A plant's PV parameters and calibration factor in the registry."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from pms_common import timeutil
from pms_registry.registry import Registry, RegistryError

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timeutil.JST)


def test_pv_parameters_default_to_none_are_replaced_and_survive_calibration(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path}/r.db")
    registry.migrate()
    registry.ensure_customer("c1", "One")
    code = registry.create_plant(customer_id="c1", name="P", address="Tokyo", phone="03", created_at=T0)
    assert registry.plant_pv(code).dc_kw is None
    registry.set_plant_pv(code, dc_kw=59.4, ac_kw=49.5, tilt_deg=10.0)
    calibrated = registry.set_calibration(code, 0.72, T0, 12)
    assert (calibrated.dc_kw, calibrated.ac_kw, calibrated.calibration_factor, calibrated.calibration_days) == \
        (59.4, 49.5, 0.72, 12)
    assert calibrated.calibrated_at == T0
    replaced = registry.set_plant_pv(code, tilt_deg=30.0)  # the others go back to their defaults
    assert (replaced.dc_kw, replaced.tilt_deg, replaced.calibration_factor) == (None, 30.0, 0.72)
    with pytest.raises(RegistryError, match="no plant pss99999999"):
        registry.set_plant_pv("pss99999999", dc_kw=1.0)
    with pytest.raises(RegistryError, match="unknown PV parameter"):
        registry.set_plant_pv(code, colour=1.0)
    assert registry.delete_plant(code)  # its PV row goes with it
    assert registry.plant_pv(code).calibration_factor is None
    registry.close()
