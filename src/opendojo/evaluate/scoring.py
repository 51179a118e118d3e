"""Driving score and suite statistics for closed-loop evaluation.

The driving score follows the CARLA leaderboard's form:

    driving score = route completion x product of infraction penalties

with route completion in [0, 1] and one multiplicative penalty per infraction. The
coefficients (CARLA Leaderboard 1.0 values where CARLA has the infraction):

| infraction                         | penalty | note                                  |
|------------------------------------|---------|---------------------------------------|
| collision with a pedestrian        | 0.50    | CARLA                                 |
| collision with a vehicle           | 0.60    | CARLA                                 |
| collision with a static object     | 0.65    | CARLA (stalled car counts as vehicle) |
| off-road driving                   | -       | CARLA: the share of the route driven off-road is removed from route completion |
| (route completion)                 | -       | CARLA: the route's distance completed; here the progress along the lanes' direction (each step's displacement projected on the heading of the lane the car is in) over a route of 0.7 x the speed limit x the episode's length, or 1 on arriving at the routed exit. A car that circles or drives against its lane makes no progress |
| harsh jerk (> 10 m/s^3, per second) | 0.95   | ours: comfort has no CARLA penalty; one factor per second spent above the limit, at most 5 |

An episode ends at a collision (highway-env stops crashed cars), so a collision also cuts
route completion short, as being blocked does in CARLA.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

PENALTY = {"pedestrian": 0.50, "vehicle": 0.60, "object": 0.65}
JERK_LIMIT = 10.0          # m/s^3
JERK_PENALTY = 0.95        # per second above the limit
JERK_MAX_PENALTIES = 5


@dataclass
class Episode:
    """What happened in one closed-loop episode and its score."""

    driver: str               # "network", "expert", a human profile ...
    scenario: str
    rare_event: str
    seed: int
    steps: int
    duration_s: float
    distance_m: float
    route_length_m: float
    route_completion: float   # 0..1, off-road share already removed
    collision: str            # "" or "vehicle" / "pedestrian" / "object"
    off_road_s: float
    mean_abs_jerk: float      # m/s^3
    harsh_jerk_s: float
    score: float = field(default=0.0)
    progress_m: float = math.nan   # along the lanes' direction (signed: backwards counts against)

    def to_dict(self) -> dict:
        return asdict(self)


def episode_metrics(driver: str, scenario: str, rare_event: str, seed: int, t: np.ndarray,
                    x: np.ndarray, y: np.ndarray, speed: np.ndarray, on_road: np.ndarray,
                    lane_heading: np.ndarray, collision: str, route_length_m: float,
                    arrived: bool = False) -> Episode:
    """Metrics and driving score from the ego's per-step trace (time s, x/y m, speed m/s,
    the heading of the lane it is in, rad)."""
    t, x, y, speed, lane_heading = map(np.asarray, (t, x, y, speed, lane_heading))
    on_road = np.asarray(on_road, bool)
    steps = len(t)
    dt = float(np.median(np.diff(t))) if steps > 1 else 0.0
    dx, dy = np.diff(x), np.diff(y)
    seg = np.hypot(dx, dy)
    distance = float(seg.sum())
    off_distance = float(seg[~on_road[1:]].sum()) if steps > 1 else 0.0
    progress = float((dx * np.cos(lane_heading[:-1]) + dy * np.sin(lane_heading[:-1])).sum())
    completion = 1.0 if arrived else \
        min(1.0, max(0.0, progress) / route_length_m) if route_length_m > 0 else 0.0
    if distance > 0:
        completion *= 1.0 - off_distance / distance
    jerk = np.abs(np.diff(speed, n=2)) / dt**2 if steps > 2 and dt > 0 else np.zeros(0)
    harsh_s = float((jerk > JERK_LIMIT).sum() * dt)
    ep = Episode(driver=driver, scenario=scenario, rare_event=rare_event or "", seed=int(seed),
                 steps=steps, duration_s=float(t[-1] - t[0]) if steps else 0.0,
                 distance_m=distance, route_length_m=float(route_length_m), progress_m=progress,
                 route_completion=float(completion), collision=collision or "",
                 off_road_s=float((~on_road).sum() * dt), mean_abs_jerk=float(jerk.mean()) if len(jerk) else 0.0,
                 harsh_jerk_s=harsh_s)
    ep.score = driving_score(ep)
    return ep


def driving_score(ep: Episode) -> float:
    penalty = PENALTY.get(ep.collision, 1.0) if ep.collision else 1.0
    penalty *= JERK_PENALTY ** min(JERK_MAX_PENALTIES, math.floor(ep.harsh_jerk_s))
    return float(ep.route_completion * penalty)


def mean_ci(values, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean and a bootstrap (BCa where possible) confidence interval."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return (float("nan"),) * 3
    if len(v) < 3 or np.all(v == v[0]):
        return float(v.mean()), float(v.min()), float(v.max())
    from scipy.stats import bootstrap

    res = bootstrap((v,), np.mean, confidence_level=confidence, n_resamples=2000,
                    random_state=np.random.default_rng(seed), method="percentile")
    return float(v.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_difference(a: list[dict], b: list[dict]) -> dict:
    """Driving score of episodes `a` minus `b` on the same suite items (episode dicts paired
    by seed): mean, a 95% bootstrap CI of the mean difference, and the number of pairs."""
    sa = {e["seed"]: e["score"] for e in a}
    sb = {e["seed"]: e["score"] for e in b}
    seeds = sorted(set(sa) & set(sb))
    m, lo, hi = mean_ci([sa[s] - sb[s] for s in seeds])
    return {"mean": round(m, 4), "ci": [round(lo, 4), round(hi, 4)], "pairs": len(seeds)}


def poisson_ci(k: int, km: float, conf: float = 0.95) -> list[float]:
    """Exact (Garwood) confidence interval of a collision rate: k collisions in km."""
    from scipy.stats import chi2

    if km <= 0:
        return [float("nan"), float("nan")]
    a = 1 - conf
    lo = 0.0 if k == 0 else chi2.ppf(a / 2, 2 * k) / 2
    hi = chi2.ppf(1 - a / 2, 2 * k + 2) / 2
    return [float(lo / km), float(hi / km)]


def summarize(episodes: list[Episode]) -> dict:
    """Suite figures for one driver: collisions per km with its exact Poisson 95% CI, mean
    driving score with its bootstrap 95% CI."""
    km = sum(e.distance_m for e in episodes) / 1000.0
    collisions = sum(1 for e in episodes if e.collision)
    score, lo, hi = mean_ci([e.score for e in episodes])
    return {
        "episodes": len(episodes), "km": km, "collisions": collisions,
        "collisions_per_km": collisions / km if km > 0 else float("nan"),
        "collisions_per_km_ci": poisson_ci(collisions, km),
        "score": score, "score_ci": [lo, hi],
        "route_completion": float(np.mean([e.route_completion for e in episodes])) if episodes else float("nan"),
        "mean_abs_jerk": float(np.mean([e.mean_abs_jerk for e in episodes])) if episodes else float("nan"),
        "off_road_s": float(sum(e.off_road_s for e in episodes)),
    }
