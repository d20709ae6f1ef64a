"""Physiology per species: which ABR waves exist, where to look for them, and which one the metrics score.

A `Profile` holds latency windows in ms after the stimulus reaches the ear, the system's
delay between the record's start and that moment (`delay_ms`: the record's own time axis
is window + delay), the primary wave (the one detection, the latency metrics and the
`sample/wave_<primary>_*` scalars follow: `metrics_registry.wave_metric`), and how the picker
measures a peak.

- human: waves I, III and V in the windows the picker has always used (adult and infant
  ranges), wave V primary: it is the largest and last to vanish towards threshold, so
  clinical thresholds and latency norms are read on it. Noise: the trace's fast part
  (`peaks.py`), tuned on the simulator's 20 kHz, ~3 kHz-band traces.
- mouse: waves I-V. Latencies at high click levels from Henry (1979) and Zhou et al.
  (2006, "Auditory brainstem responses in 10 inbred strains of mice", Brain Res 1091:
  16-26): I ~1.4, II ~2.2, III ~3.0, IV ~4.0, V ~5.5 ms, each growing by up to ~0.7 ms
  towards threshold (the windows' upper ends). Wave I is primary: it is the auditory
  nerve's compound response, the first and most reliably identified mouse wave (the
  later ones merge and vary between strains), and the measure of cochlear synaptopathy
  (Kujawa & Liberman 2009, J Neurosci 29:14077-14085). (In the development recordings
  wave II has the larger peak-to-trough, its trough being the deepest: size is not why.)
  Noise: the recording's own response-free parts, before wave I and after wave V (mouse
  hardware is often band-limited below ~3 kHz, where the fast-part estimate sees no
  noise at all). The default `delay_ms` was measured on Tucker-Davis BioSigRZ mouse
  click series (24,414 Hz): their median wave I at 80-90 dB SPL (2.3-2.4 ms) lies 0.9 ms
  after the literature's ~1.4 ms (sound travel from the speaker plus converter
  latency); other systems set `physiology.delay_ms` (e.g. 0 where the record starts
  when the sound reaches the ear).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

Window = tuple[float, float]
WAVE_NAMES = ("I", "II", "III", "IV", "V", "VI", "VII")  # Jewett's Roman numerals, in latency order
Species = Literal["human", "mouse"]


@dataclass(frozen=True)
class Profile:
    """One species' waves, windows (ms after the stimulus at the ear) and peak measurement."""

    species: str
    waves: dict[str, Window]
    primary: str
    delay_ms: float = 0.0
    trough_ms: float = 2.0  # the peak-to-trough amplitude looks for the trough this far after the peak
    smooth_ms: float = 0.15  # Gaussian sigma the picker smooths with
    noise: Literal["fast", "baseline"] = "fast"  # where a trace's noise is estimated (module docstring)
    min_snr: float = 10.0  # a peak-to-trough must exceed min_snr times that noise (RMS)
    first_fraction: float = 0.0  # > 0: pick the earliest peak at least this fraction of the window's largest
    truth_from_series: bool = False  # a file without marks: response truth from level-series agreement

    def windows_ms(self) -> dict[str, Window]:
        """Each wave's window on the record's time axis (shifted by the system delay)."""
        return {w: (round(lo + self.delay_ms, 9), round(hi + self.delay_ms, 9)) for w, (lo, hi) in self.waves.items()}

    def primary_window_ms(self) -> Window:
        return self.windows_ms()[self.primary]

    def baseline_ms(self) -> Window:
        """The response-free interval: from the record's start to the first wave's window."""
        return 0.0, min(lo for lo, _ in self.windows_ms().values())

    def response_ms(self) -> Window:
        """From the first wave's window to the last one's end: where a response lives."""
        spans = self.windows_ms().values()
        return min(lo for lo, _ in spans), max(hi for _, hi in spans)


HUMAN = Profile("human", {"I": (1.0, 3.0), "III": (3.0, 5.0), "V": (4.5, 10.0)}, "V")
# Mouse waves are ~0.3-0.5 ms wide: lighter smoothing, and the trough follows within ~0.6 ms.
# min_snr 6 on the response-free RMS (`peaks.baseline_rms`): on simulated band-limited mouse noise
# (tests/mouse_like.py) 5% of noise-only traces pass (8% at 5, 28% at 3); 3% of the development click
# records at <= 30 dB SPL do.
MOUSE = Profile("mouse", {"I": (1.0, 2.1), "II": (1.8, 2.8), "III": (2.8, 3.9), "IV": (3.6, 5.0), "V": (4.8, 6.8)},
                "I", delay_ms=0.9, trough_ms=0.7, smooth_ms=0.06, noise="baseline", min_snr=6.0,
                first_fraction=0.5, truth_from_series=True)
PROFILES: dict[str, Profile] = {"human": HUMAN, "mouse": MOUSE}


def resolve_profile(species: str = "human", waves: dict[str, list[float]] | None = None,
                    primary_wave: str | None = None, delay_ms: float | None = None) -> Profile:
    """The species' profile with the config's overrides: windows replaced wave by wave (a new wave name adds
    one), the primary wave and the delay. Unchecked: `window_problems` says what is wrong."""
    base = PROFILES[species]
    merged = dict(base.waves)
    merged.update({str(k): (float(v[0]), float(v[1])) for k, v in (waves or {}).items()})
    ordered = {w: merged[w] for w in sorted(merged, key=_order)}
    return replace(base, waves=ordered, primary=primary_wave or base.primary,
                   delay_ms=base.delay_ms if delay_ms is None else float(delay_ms))


def window_problems(waves: dict, primary_wave: str | None, delay_ms: float | None, species: str,
                    record_ms: float) -> list[str]:
    """What is wrong with a `physiology` section: unknown wave names, windows that are not two finite,
    increasing numbers inside the record, windows out of latency order, an unknown primary wave."""
    out = [f"physiology.waves names {k!r}; wave names are {', '.join(WAVE_NAMES)}" for k in waves
           if k not in WAVE_NAMES]
    for k, v in waves.items():
        ok = isinstance(v, (list, tuple)) and len(v) == 2 and all(_finite(x) for x in v) and v[0] < v[1]
        if not ok:
            out.append(f"physiology.waves.{k} must be [start_ms, end_ms], two finite numbers with start < end, "
                       f"got {v!r}")
    if delay_ms is not None and not (0.0 <= delay_ms < record_ms):
        out.append(f"physiology.delay_ms must be in [0, {record_ms:g}) ms (the record's length), got {delay_ms:g}")
    if out:
        return out
    profile = resolve_profile(species, waves, primary_wave, delay_ms)
    for w, (lo, hi) in profile.windows_ms().items():
        # A window given here must fit the record; a species' own may run past a short record's end (the
        # picker searches what there is) but must start inside it.
        if (w in waves and (lo < 0 or hi > record_ms)) or lo >= record_ms:
            out.append(f"physiology.waves.{w} lies at [{lo:g}, {hi:g}] ms on the record (delay_ms "
                       f"{profile.delay_ms:g} included), outside the record's [0, {record_ms:g}] ms")
    starts = [lo for lo, _ in profile.waves.values()]
    if starts != sorted(starts) or len(set(starts)) != len(starts):
        out.append(f"physiology.waves must start in latency order ({', '.join(profile.waves)}), got "
                   f"{ {w: list(v) for w, v in profile.waves.items()} }")
    if profile.primary not in profile.waves:
        out.append(f"physiology.primary_wave {profile.primary!r} is not one of the waves "
                   f"({', '.join(profile.waves)})")
    return out


def _order(name: str) -> int:
    return WAVE_NAMES.index(name) if name in WAVE_NAMES else len(WAVE_NAMES)


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
