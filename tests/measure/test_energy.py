"""Energy: the RAPL counter path on a fake powercap tree (wraparound, zones, idle power), the
NVML path with a fake NVML, and the labelled estimate when no counter is readable."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from compress.measure.energy import (
    EnergyConfig,
    EnergyMeter,
    co2e_g_per_million,
    inference_energy,
    power_model,
)

MAX_UJ = 262_143_328_850


def fake_powercap(root: Path, package_uj: int = 1_000, dram_uj: int | None = None) -> Path:
    """A powercap tree as Linux lays it out: package zone with a core subzone, and psys."""
    def zone(name: str, label: str, uj: int):
        d = root / name
        d.mkdir(parents=True)
        (d / "name").write_text(label + "\n")
        (d / "energy_uj").write_text(f"{uj}\n")
        (d / "max_energy_range_uj").write_text(f"{MAX_UJ}\n")

    zone("intel-rapl:0", "package-0", package_uj)
    zone("intel-rapl:0:0", "core", 5)          # inside the package: must not be added again
    zone("intel-rapl:1", "psys", 7)            # platform: includes the package
    if dram_uj is not None:
        zone("intel-rapl:0:1", "dram", dram_uj)
    return root


def set_uj(root: Path, zone: str, uj: int) -> None:
    (root / zone / "energy_uj").write_text(f"{uj}\n")


def test_counter_path_is_chosen_and_handles_wraparound(tmp_path):
    # setup: the package counter is 100 uJ below its wrap point
    root = fake_powercap(tmp_path / "powercap", package_uj=MAX_UJ - 100, dram_uj=0)
    meter = EnergyMeter(EnergyConfig(idle_w=0.0), powercap_root=root)
    # execute: it wraps to 900 (1000 uJ spent); DRAM spends 500 uJ; core and psys move too
    meter.start()
    set_uj(root, "intel-rapl:0", 900)
    set_uj(root, "intel-rapl:0:1", 500)
    set_uj(root, "intel-rapl:0:0", 10**9)
    set_uj(root, "intel-rapl:1", 10**9)
    result = meter.stop()
    # assert
    assert result["method"] == "rapl" and result["label"] == "RAPL counter"
    assert result["joules"] == pytest.approx(1500e-6)
    assert result["power_model"] is None and "package-0, dram" in result["why"]


def test_idle_power_is_subtracted_from_the_counter(tmp_path):
    # setup
    root = fake_powercap(tmp_path / "pc", package_uj=0)
    meter = EnergyMeter(EnergyConfig(idle_w=2.0), powercap_root=root)
    # execute
    meter.start()
    set_uj(root, "intel-rapl:0", 5_000_000)  # 5 J
    result = meter.stop()
    # assert: 5 J minus 2 W over the (short) window
    assert result["joules"] == pytest.approx(5.0 - 2.0 * result["window_s"], rel=1e-6)
    assert result["idle_w"] == {"rapl": 2.0}


def test_idle_power_is_measured_when_not_given(tmp_path):
    # setup: a counter that does not move while idle
    root = fake_powercap(tmp_path / "pc2", package_uj=42)
    # execute
    with EnergyMeter(EnergyConfig(idle_s=0.1), powercap_root=root) as meter:
        set_uj(root, "intel-rapl:0", 42 + 3_000)
    # assert
    assert meter.result["idle_w"] == {"rapl": 0.0}
    assert meter.result["joules"] == pytest.approx(3e-3)
    assert "shorter than the 1 s" in meter.result["why"]  # the window is flagged, not hidden


def test_environment_variable_points_at_the_powercap_tree(tmp_path, monkeypatch):
    root = fake_powercap(tmp_path / "env")
    monkeypatch.setenv("COMPRESS_POWERCAP_ROOT", str(root))
    assert EnergyMeter(EnergyConfig(idle_w=0)).method == "rapl"


def test_inference_energy_through_the_counter(tmp_path):
    # setup: every "inference" makes the fake package counter advance by exactly 1 mJ
    root = fake_powercap(tmp_path / "inf", package_uj=0)
    energy = root / "intel-rapl:0" / "energy_uj"
    state = {"uj": 0}

    def infer():
        state["uj"] += 1000
        energy.write_text(str(state["uj"]))

    # execute: batch of 4 samples per call
    out = inference_energy({"m": (infer, 4)}, window_s=0.0, rounds=2,
                           config=EnergyConfig(idle_w=0), powercap_root=root)["m"]
    # assert: the counter's minimum window (1 s) was honoured in each round
    assert out["method"] == "rapl"
    assert out["mj_per_inference"] == pytest.approx(0.25)
    assert out["window_s"] >= 2.0 and out["calls"] > 0


def test_estimate_is_labelled_with_its_power_model_when_no_counter(tmp_path):
    # setup
    cfg = EnergyConfig(tdp_w=280, cores=64)
    meter = EnergyMeter(cfg, powercap_root=tmp_path / "absent")
    # execute: burn some CPU
    meter.start()
    sum(i * i for i in range(300_000))
    result = meter.stop()
    # assert
    assert result["method"] == "estimate"
    assert result["label"] == "estimate: CPU time x 4.38 W/core (±50 %)"
    assert "does not exist" in result["why"] and "no NVML" in result["why"]
    assert result["joules"] == pytest.approx(result["cpu_s"] * 280 / 64)
    assert result["cpu_s"] > 0 and result["uncertainty_pct"] == 50.0


def test_power_model_defaults_and_overrides():
    exact = power_model(EnergyConfig(), "AMD EPYC 7763 64-Core Processor")
    family = power_model(EnergyConfig(), "AMD EPYC")
    unknown = power_model(EnergyConfig(), "Some CPU")
    given = power_model(EnergyConfig(watts_per_core=7.5), "AMD EPYC")
    assert exact["watts_per_core"] == 280 / 64 and exact["uncertainty_pct"] == 50
    assert family["watts_per_core"] == 280 / 64 and family["uncertainty_pct"] == 100
    assert "family default" in family["source"] and "'AMD EPYC'" in family["source"]
    assert unknown["watts_per_core"] == 65 / 8 and "generic" in unknown["source"]
    assert given["watts_per_core"] == 7.5 and "given" in given["source"]
    with pytest.raises(ValidationError, match="together"):
        EnergyConfig(tdp_w=100)


class FakeNvml:
    def __init__(self):
        self.mj = 10_000

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return self.mj


def test_gpu_energy_comes_from_nvml_beside_the_cpu_estimate(tmp_path):
    # setup
    nvml = FakeNvml()
    meter = EnergyMeter(EnergyConfig(idle_w=0, watts_per_core=1.0),
                        powercap_root=tmp_path / "none", nvml=nvml)
    # execute
    meter.start()
    nvml.mj += 2_500
    result = meter.stop()
    # assert
    assert result["method"] == "nvml+estimate"  # most trustworthy source first
    assert result["parts_j"]["nvml"] == pytest.approx(2.5)
    assert result["joules"] == pytest.approx(2.5 + result["cpu_s"] * 1.0)


def test_co2e_per_million_inferences():
    # 3.6 J per inference x 1e6 = 1 kWh; at 400 g/kWh -> 400 g
    assert co2e_g_per_million(3.6, 400) == pytest.approx(400)
