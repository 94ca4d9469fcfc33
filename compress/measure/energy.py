"""Energy of a piece of work, from the most trustworthy source this machine offers, and always
labelled with the source that gave it and why the better ones were not used:

1. `rapl`: RAPL energy counters through Linux powercap (`/sys/class/powercap/intel-rapl:*`;
   AMD CPUs expose the same interface), idle power subtracted;
2. `nvml`: NVIDIA's total-energy counter per GPU (Volta and later), idle power subtracted;
3. `estimate`: process CPU time x a stated power model (watts per busy core, from the CPU's
   TDP / cores unless given), with its uncertainty.

A counter covers the CPU package (or the GPU), not a process, so on a shared machine other
processes' work in the window counts too: the `why` says so. `COMPRESS_POWERCAP_ROOT` points the
meter at another powercap tree (tests use a fake one).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

POWERCAP_ENV = "COMPRESS_POWERCAP_ROOT"
DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"
# RAPL updates about every millisecond and NVML's counter every few tens of milliseconds; a
# window of a second keeps the quantisation error well under 1 % and 10 % respectively.
MIN_WINDOW_S = {"rapl": 1.0, "nvml": 1.0, "estimate": 0.0}
POLL_S = 5.0  # counters are read this often in long windows, so that a wraparound is never missed

# Published TDP and core count; the first substring of the CPU model name that matches wins, so
# exact parts come before family defaults (a hypervisor often shows only "AMD EPYC").
_TDP_TABLE: tuple[tuple[str, float, int, str], ...] = (
    ("EPYC 9654", 360, 96, "AMD EPYC 9654"),
    ("EPYC 9554", 360, 64, "AMD EPYC 9554"),
    ("EPYC 9454", 290, 48, "AMD EPYC 9454"),
    ("EPYC 7763", 280, 64, "AMD EPYC 7763"),
    ("EPYC 7713", 225, 64, "AMD EPYC 7713"),
    ("Platinum 8480", 350, 56, "Intel Xeon Platinum 8480+"),
    ("Platinum 8380", 270, 40, "Intel Xeon Platinum 8380"),
    ("EPYC", 280, 64, "family default for AMD EPYC: EPYC 7763"),
    ("Xeon", 270, 40, "family default for Intel Xeon: Xeon Platinum 8380"),
)
_GENERIC_TDP = (65.0, 8, "generic default: a 65 W, 8-core desktop CPU")


class EnergyConfig(BaseModel):
    """How energy is turned into figures: the power model for estimates, idle power for
    counters, grid carbon intensity for CO2e. Pipeline YAML: `energy: {...}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    watts_per_core: float | None = Field(
        None, gt=0, le=1000, description="estimate: watts per busy core; default tdp_w / cores")
    tdp_w: float | None = Field(None, gt=0, description="estimate: CPU package TDP in watts")
    cores: int | None = Field(None, ge=1, description="estimate: physical cores sharing tdp_w")
    grid_gco2_per_kwh: float = Field(
        480.0, ge=0, le=2000, description="grid carbon intensity for CO2e (world average ~480)")
    idle_w: float | None = Field(
        None, ge=0, description="counters: idle power subtracted; default measured once")
    idle_s: float = Field(1.0, gt=0, le=60, description="counters: seconds of idle measured")

    @model_validator(mode="after")
    def _consistent(self):
        if (self.tdp_w is None) != (self.cores is None):
            raise ValueError("give tdp_w and cores together (watts per core = tdp_w / cores)")
        if self.watts_per_core is not None and self.tdp_w is not None:
            raise ValueError("give watts_per_core or tdp_w/cores, not both")
        return self


def power_model(cfg: EnergyConfig, cpu_model: str | None = None) -> dict:
    """Watts per busy core, where the figure comes from, and its uncertainty."""
    if cfg.watts_per_core is not None:
        return {"watts_per_core": cfg.watts_per_core, "source": "given (energy.watts_per_core)",
                "uncertainty_pct": 50.0}
    if cfg.tdp_w is not None:
        return {"watts_per_core": cfg.tdp_w / cfg.cores, "tdp_w": cfg.tdp_w, "cores": cfg.cores,
                "source": f"given TDP {cfg.tdp_w:g} W / {cfg.cores} cores",
                "uncertainty_pct": 50.0}
    if cpu_model is None:
        from compress.measure.system import cpu_info

        cpu_model = cpu_info()["cpu_model"]
    row = next((r for r in _TDP_TABLE if r[0] in cpu_model), None)
    tdp, cores, part = row[1:] if row else _GENERIC_TDP
    exact = row is not None and "default" not in part
    # TDP / cores is a sustained all-core figure: one busy core may boost above it, and the
    # uncore, memory and idle draw are not attributed; a family default adds the spread
    # between parts (3.75 W per core for an EPYC 9654, 8.75 W for an EPYC 9354).
    return {"watts_per_core": tdp / cores, "tdp_w": tdp, "cores": cores,
            "source": f"TDP {tdp:g} W / {cores} cores ({part}; CPU reports '{cpu_model}')",
            "uncertainty_pct": 50.0 if exact else 100.0}


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its waited-for children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class RaplCounter:
    """Package (and DRAM) RAPL zones of a powercap tree, summed, with wraparound handled."""

    def __init__(self, zones: list[tuple[str, Path, int]]):
        self.zones = zones  # (name, energy_uj path, max_energy_range_uj)
        self._last: list[int] | None = None
        self.total_uj = 0

    @classmethod
    def open(cls, root: str | Path) -> tuple[RaplCounter | None, str]:
        root = Path(root)
        if not root.is_dir():
            return None, f"{root} does not exist (no powercap driver; usual in VMs and containers)"
        zones = []
        for d in sorted(root.glob("intel-rapl:*")):
            try:
                name = (d / "name").read_text().strip()
            except OSError:
                continue
            top = d.name.count(":") == 1
            # Packages hold their core/uncore subzones; DRAM is separate; psys (platform)
            # already includes the packages, so summing it would count them twice.
            if (top and name.startswith("package")) or (not top and name == "dram"):
                zones.append((name, d / "energy_uj", d / "max_energy_range_uj"))
        if not zones:
            return None, f"{root} has no intel-rapl package zone"
        opened = []
        for name, energy, max_range in zones:
            try:
                int(energy.read_text())
                opened.append((name, energy, int(max_range.read_text())))
            except PermissionError:
                return None, (f"{energy} is not readable (root only since Linux 5.10, "
                              "CVE-2020-8694; `sudo chmod o+r` it to use the counter)")
            except (OSError, ValueError) as e:
                return None, f"{energy} cannot be read ({e})"
        return cls(opened), f"RAPL zones {', '.join(z[0] for z in opened)} under {root}"

    def _read(self) -> list[int]:
        return [int(path.read_text()) for _, path, _ in self.zones]

    def poll(self) -> None:
        now = self._read()
        if self._last is not None:
            for (_, _, max_uj), before, after in zip(self.zones, self._last, now, strict=True):
                self.total_uj += after - before if after >= before else max_uj - before + after
        self._last = now

    def reset(self) -> None:
        self._last, self.total_uj = None, 0
        self.poll()


class NvmlCounter:
    """Total energy of every visible NVIDIA GPU through NVML (millijoules since driver load)."""

    def __init__(self, nvml, handles: list):
        self.nvml, self.handles = nvml, handles
        self._start: list[int] = []
        self.total_mj = 0

    @classmethod
    def open(cls, nvml=None) -> tuple[NvmlCounter | None, str]:
        if nvml is None:
            try:
                import pynvml as nvml  # nvidia-ml-py; optional
            except ImportError:
                return None, "no NVML (nvidia-ml-py not installed)"
        try:
            nvml.nvmlInit()
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
            for h in handles:
                nvml.nvmlDeviceGetTotalEnergyConsumption(h)
        except Exception as e:  # NVMLError subclasses: no driver, no GPU, GPU too old
            return None, f"no NVML energy counter ({type(e).__name__}: {e})"
        if not handles:
            return None, "no NVML GPU"
        return cls(nvml, handles), f"NVML total-energy counter on {len(handles)} GPU(s)"

    def _read(self) -> list[int]:
        return [int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in self.handles]

    def reset(self) -> None:
        self._start, self.total_mj = self._read(), 0

    def poll(self) -> None:
        self.total_mj = sum(b - a for a, b in zip(self._start, self._read(), strict=True))


_IDLE_W: dict[tuple, float] = {}  # measured idle power per counter, once per process


class EnergyMeter:
    """Energy of the work between `start()` and `stop()` (or inside `with`): `result` is a dict
    {joules, method, label, why, window_s, cpu_s, idle_w, power_model, uncertainty_pct}."""

    def __init__(self, config: EnergyConfig | None = None, *, powercap_root=None, nvml=None,
                 cpu_model: str | None = None):
        self.config = config or EnergyConfig()
        root = powercap_root or os.environ.get(POWERCAP_ENV) or DEFAULT_POWERCAP_ROOT
        self.rapl, rapl_why = RaplCounter.open(root)
        self.nvml, nvml_why = NvmlCounter.open(nvml)
        self.power = None if self.rapl else power_model(self.config, cpu_model)
        parts = (["rapl"] if self.rapl else ["estimate"]) + (["nvml"] if self.nvml else [])
        self.method = "+".join(sorted(parts, key=["rapl", "nvml", "estimate"].index))
        self.min_window_s = max(MIN_WINDOW_S[p] for p in parts)
        if self.rapl:
            cpu_why = (f"CPU: {rapl_why}, idle power subtracted; the counter covers the whole "
                       "package, so other processes' work in the window counts too")
        else:
            pm = self.power
            cpu_why = (f"CPU: no RAPL counter ({rapl_why}), so an estimate: process CPU time x "
                       f"{pm['watts_per_core']:.2f} W per busy core ({pm['source']}), "
                       f"±{pm['uncertainty_pct']:.0f} %")
        gpu_why = f"GPU: {nvml_why}" + (", idle power subtracted" if self.nvml else "")
        self.why = f"{cpu_why}; {gpu_why}"
        self.result: dict | None = None
        self.idle: dict[str, float] = {}
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def _idle_w(self, key: tuple, counter) -> float:
        if self.config.idle_w is not None:
            return self.config.idle_w
        if key not in _IDLE_W:
            counter.reset()
            t0 = time.perf_counter()
            time.sleep(self.config.idle_s)
            counter.poll()
            joules = counter.total_uj / 1e6 if key[0] == "rapl" else counter.total_mj / 1e3
            _IDLE_W[key] = max(joules / (time.perf_counter() - t0), 0.0)
        return _IDLE_W[key]

    def start(self) -> EnergyMeter:
        if self.rapl:
            self.idle["rapl"] = self._idle_w(("rapl", tuple(z[1] for z in self.rapl.zones)),
                                             self.rapl)
            self.rapl.reset()
        if self.nvml:
            self.idle["nvml"] = self._idle_w(("nvml", len(self.nvml.handles)), self.nvml)
            self.nvml.reset()
        if self.rapl:
            self._stop.clear()
            self._poller = threading.Thread(target=self._poll_loop, daemon=True)
            self._poller.start()
        self._cpu0, self._t0 = cpu_seconds(), time.perf_counter()
        return self

    def _poll_loop(self) -> None:
        while not self._stop.wait(POLL_S):
            self.rapl.poll()

    def stop(self) -> dict:
        window = time.perf_counter() - self._t0
        cpu_s = cpu_seconds() - self._cpu0
        if self._poller is not None:
            self._stop.set()
            self._poller.join()
            self._poller = None
        parts: dict[str, float] = {}
        if self.rapl:
            self.rapl.poll()
            parts["rapl"] = self.rapl.total_uj / 1e6 - self.idle["rapl"] * window
        else:
            parts["estimate"] = cpu_s * self.power["watts_per_core"]
        if self.nvml:
            self.nvml.poll()
            parts["nvml"] = self.nvml.total_mj / 1e3 - self.idle["nvml"] * window
        joules = sum(parts.values())
        notes = []
        if joules < 0:
            notes.append("below the idle-power noise; reported as 0")
            joules = 0.0
        if window < self.min_window_s:
            notes.append(f"window {window:.2f} s is shorter than the {self.min_window_s:g} s "
                         "the counter needs to be reliable")
        self.result = {
            "joules": joules,
            "method": self.method,
            "label": method_label(self.method, self.power),
            "why": self.why + "".join(f"; {n}" for n in notes),
            "window_s": window,
            "cpu_s": cpu_s,
            "parts_j": parts,
            "idle_w": dict(self.idle) or None,
            "power_model": self.power,
            "uncertainty_pct": self.power["uncertainty_pct"] if self.power else None,
        }
        return self.result

    def __enter__(self) -> EnergyMeter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def method_label(method: str, power: dict | None) -> str:
    """Short human label: 'RAPL counter', 'estimate: CPU time x 4.38 W/core (±100 %)'."""
    names = {"rapl": "RAPL counter", "nvml": "NVML counter"}
    out = []
    for part in method.split("+"):
        if part == "estimate":
            out.append(f"estimate: CPU time x {power['watts_per_core']:.2f} W/core "
                       f"(±{power['uncertainty_pct']:.0f} %)")
        else:
            out.append(names[part])
    return " + ".join(out)


def co2e_g_per_million(joules_per_inference: float, grid_gco2_per_kwh: float) -> float:
    """Grams CO2e for a million inferences: J -> kWh (3.6 MJ each) x grid intensity."""
    return joules_per_inference * 1e6 / 3.6e6 * grid_gco2_per_kwh


def inference_energy(
    candidates: dict[str, tuple],
    window_s: float = 1.0,
    rounds: int = 2,
    config: EnergyConfig | None = None,
    **meter_kw,
) -> dict[str, dict]:
    """Energy per inference of each candidate `name: (fn, samples_per_call)`.

    Each candidate runs back to back for `rounds` windows of at least `window_s / rounds`
    seconds (and at least what the counter needs), the candidates taking turns, so drift hits
    all alike. Per inference = joules / (calls x samples per call).
    """
    totals = {n: {"joules": 0.0, "calls": 0, "window_s": 0.0, "cpu_s": 0.0} for n in candidates}
    last: dict[str, dict] = {}
    names = list(candidates)
    for rnd in range(rounds):
        for name in names[rnd % len(names):] + names[: rnd % len(names)]:
            fn, _ = candidates[name]
            meter = EnergyMeter(config, **meter_kw)
            window = max(window_s / rounds, meter.min_window_s)
            calls = 0
            meter.start()
            end = time.perf_counter() + window
            while time.perf_counter() < end:
                fn()
                calls += 1
            r = meter.stop()
            t = totals[name]
            t["joules"] += r["joules"]
            t["calls"] += calls
            t["window_s"] += r["window_s"]
            t["cpu_s"] += r["cpu_s"]
            last[name] = r
    out = {}
    for name, t in totals.items():
        samples = t["calls"] * candidates[name][1]
        r = last[name]
        out[name] = {
            "joules_per_inference": t["joules"] / samples,
            "mj_per_inference": t["joules"] / samples * 1e3,
            "cpu_ms_per_inference": t["cpu_s"] / samples * 1e3,
            "calls": t["calls"], "samples_per_call": candidates[name][1],
            "window_s": t["window_s"], "joules": t["joules"],
            **{k: r[k] for k in ("method", "label", "why", "power_model", "uncertainty_pct",
                                 "idle_w")},
        }
    return out
