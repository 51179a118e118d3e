"""Counts over a fleet's clips: per scenario, route, vehicle and driver from the catalog;
per driver profile and rare event from the sim-truth table (marked as such: only
evaluation and these stats read it, never the engine or the labeller)."""

from __future__ import annotations

from collections import Counter


def fleet_stats(store) -> dict:
    """Counts over the simulated clips of `store` (an `opendojo.clips.store.ClipStore`)."""
    cat = store.catalog("source = 'sim'", columns=["clip_id", "scenario", "route", "vehicle_id",
                                                   "driver_id", "n_frames", "duration_s",
                                                   "distance_m"]).to_pylist()
    ids = {r["clip_id"] for r in cat}
    truth = [t for t in store.sim_truth().to_pylist() if t["clip_id"] in ids]
    profile_of = {}
    events = Counter()
    for t in truth:
        if t["clip_id"] not in profile_of:
            profile_of[t["clip_id"]] = t["driver_profile"]
            events[t["rare_event"] or "none"] += 1
    clips_per_driver = Counter(r["driver_id"] for r in cat)
    return {
        "clips": len(cat),
        "frames": int(sum(r["n_frames"] for r in cat)),
        "hours": round(sum(r["duration_s"] for r in cat) / 3600, 3),
        "km": round(sum(r["distance_m"] for r in cat) / 1000, 2),
        "scenario": dict(sorted(Counter(r["scenario"] for r in cat).items())),
        "route": dict(sorted(Counter(r["route"] for r in cat).items())),
        "vehicles": len({r["vehicle_id"] for r in cat}),
        "drivers": len(clips_per_driver),
        "clips_per_driver": dict(sorted(clips_per_driver.items())),
        "sim_truth": {
            "driver_profile": dict(sorted(Counter(profile_of.values()).items())),
            "rare_event": dict(sorted(events.items())),
        },
    }
