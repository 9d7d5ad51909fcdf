"""Power curves of simulated loads (§4.4): pumps with cycles, steady loads, synchronized bursts.

A `LoadModel` is stepped with increasing times (epoch seconds) and answers
the power a Shelly switch would report at that moment. It knows nothing about
the protocol; `pro4pm.py` turns its readings into switch status objects.

Everything random comes from the `random.Random` it is given, so a seed
replays the same day.
"""

import math
import random
from dataclasses import dataclass

# Real pumps' settled power on our plants: 550–1100 W (seed data).
PUMP_POWER_RANGE_W = (550.0, 1100.0)


@dataclass(frozen=True)
class LoadProfile:
    """How one switch output behaves.

    kind: "pump" (random on/off cycles), "steady" (always on),
    "synchronized" (on/off on a wall-clock schedule shared by every device:
    all pumps start and stop in the same second) or "off".
    """

    kind: str = "pump"
    steady_w: float = 800.0
    run_s: float = 180.0
    idle_s: float = 420.0
    noise: float = 0.008  # standard deviation, fraction of steady power (800 W: ±6 W)
    inrush: float = 4.0  # multiple of steady power at switch-on
    inrush_tau_s: float = 0.8
    glitch_p: float = 0.01  # chance that a reading inside a run is an erratic 0 W
    pf: float = 0.8
    start_running: bool = False


@dataclass(frozen=True)
class Reading:
    apower: float
    output: bool
    pf: float
    glitch: bool = False


class LoadModel:
    def __init__(self, profile: LoadProfile, rng: random.Random, *, t0: float, step_hint_s: float = 1.0):
        self.profile = profile
        self.rng = rng
        self.step_hint_s = step_hint_s
        self.running = False
        self.run_started_at: float | None = None
        self.run_ends_at = math.inf
        self.readings_in_run = 0
        self.last_was_glitch = False
        if profile.kind == "steady":
            self._start(t0, math.inf)
        elif profile.kind == "pump":
            if profile.start_running:
                self._start(t0, t0 + self._jittered(profile.run_s))
                self.next_start_at = math.inf
            else:
                # Spread first starts so devices do not all start together.
                self.next_start_at = t0 + rng.uniform(0.0, profile.idle_s)

    def _jittered(self, mean_s: float) -> float:
        return max(1.0, self.rng.uniform(0.7 * mean_s, 1.3 * mean_s))

    def _start(self, at: float, ends_at: float) -> None:
        self.running = True
        self.run_started_at = at
        self.run_ends_at = ends_at
        self.readings_in_run = 0
        self.last_was_glitch = False

    def _stop(self, at: float) -> None:
        self.running = False
        self.run_started_at = None
        self.run_ends_at = math.inf
        self.next_start_at = at + self._jittered(self.profile.idle_s)

    def _advance_schedule(self, t: float) -> None:
        kind = self.profile.kind
        if kind == "synchronized":
            period = self.profile.run_s + self.profile.idle_s
            cycle_start = t - (t % period)
            on = (t % period) < self.profile.run_s
            if on and not (self.running and self.run_started_at == cycle_start):
                self._start(cycle_start, cycle_start + self.profile.run_s)
            elif not on and self.running:
                self.running = False
                self.run_started_at = None
            return
        if kind != "pump":
            return
        # A long pause between steps may span whole cycles: walk through them.
        while True:
            if self.running and t >= self.run_ends_at:
                self._stop(self.run_ends_at)
            elif not self.running and t >= self.next_start_at:
                self._start(self.next_start_at, self.next_start_at + self._jittered(self.profile.run_s))
            else:
                return

    def read(self, t: float) -> Reading:
        """The reading at time t (t must not go backwards)."""
        p = self.profile
        if p.kind == "off":
            return Reading(0.0, False, 0.0)
        self._advance_schedule(t)
        if not self.running:
            return Reading(0.0, False, 0.0)
        elapsed = max(0.0, t - self.run_started_at)
        factor = 1.0 + (p.inrush - 1.0) * math.exp(-elapsed / p.inrush_tau_s)
        power = max(0.0, p.steady_w * factor * (1.0 + self.rng.gauss(0.0, p.noise)))
        # An erratic 0 W reading is isolated and strictly inside a run: the
        # reading before it and the one after it are both active.
        if (
            p.glitch_p > 0
            and self.readings_in_run > 0
            and not self.last_was_glitch
            and self.run_ends_at - t > 2 * self.step_hint_s
            and self.rng.random() < p.glitch_p
        ):
            self.readings_in_run += 1
            self.last_was_glitch = True
            return Reading(0.0, True, 0.0, glitch=True)
        self.readings_in_run += 1
        self.last_was_glitch = False
        pf = min(0.99, p.pf + self.rng.uniform(-0.02, 0.02))
        return Reading(power, True, pf)
