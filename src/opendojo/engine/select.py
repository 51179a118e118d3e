"""Budgeted selection: which clips a dataset version is made of (`dojo curate --budget 1%`).

Each candidate clip gets a utility from what the engine measured about it:

    interest = (w_trigger * P(trigger score) + w_disagreement * P(disagreement)
                + w_rarity * P(rarity)) / (sum of the weights)
    utility  = (floor + interest) * quality ** quality_power

P(x) is a percentile rank in [0, 1] over the candidates (0 for the lowest value, so a clip
with no trigger, or no shadow-mode result, gets 0 for that part). The trigger score sums
log(1 / share of clips where the trigger fired) over the clip's triggers: rare triggers
count more. Rarity is the mean cosine distance to the clip's `knn` nearest neighbours in
embedding space (a k-NN density estimate; sparse regions are rare). Quality is the
driver's quality score (`opendojo.engine.quality`): a hard brake by a good driver is worth
learning from, the same by a tailgater much less.

Embeddings are centred on the candidates' mean and re-normalised first (`centred_unit`).
Then:
1. near-duplicates (cosine >= `duplicate_cosine` to a kept clip of higher utility) are
   dropped;
2. coverage (`coverage`, a share of the budget, default half): FAISS k-means cells over the
   embeddings stand for the kinds of driving the fleet sent; the share is spread over the
   cells in proportion to their size (D'Hondt: next is the cell with the most clips per
   clip already taken from it), and from each cell it takes clips of drivers at least as
   good as the candidates' median, best driver first, then the clip nearest the cell's
   centre (the typical one). A budget spent only on what is rare teaches a network the
   exceptions but not the driving around them: with all of a 1.5% budget on triggered
   clips, every curated clip was an exception (`benchmarks/curation.py`; what coverage
   changed there, measured on two seeds, is in docs/engine.md);
3. the pool is the highest-utility clips holding `pool_factor` x the rest of the budget;
4. utility-weighted farthest-first (k-center greedy) over the pool, starting from the
   coverage picks: repeatedly take the clip with the largest utility x (distance to the
   nearest clip already taken), while it fits in the budget. With more than `exact_pool`
   clips in the pool it takes `batch` clips per distance update (each must also be that
   far from the others taken in the same round), which keeps a million candidates within a
   minute.

With `drop_worst` set, the clips of the lowest driver quality (that share of the candidates)
are not taken at all: their rare moments still shape the percentiles, but what a network
learns from a clip is how its driver drove.

The budget is a share of *frames*: the chosen clips hold at most floor(budget x frames).
Every chosen clip carries a one-line explanation of why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from opendojo.config import StageConfig


class SelectionConfig(StageConfig):
    budget: float = Field(0.01, gt=0, le=1, description="share of the candidates' frames to keep")
    w_trigger: float = Field(1.0, ge=0)
    w_disagreement: float = Field(1.0, ge=0)
    w_rarity: float = Field(1.0, ge=0)
    floor: float = Field(0.05, ge=0, description="utility of a clip with nothing special")
    coverage: float = Field(0.5, ge=0, le=1,
                            description="share of the budget for typical driving by good drivers, "
                                        "spread over k-means cells of the embeddings")
    quality_power: float = Field(1.0, ge=0, description="0 ignores driver quality")
    drop_worst: float = Field(0.0, ge=0, lt=1,
                              description="share of the candidates, those of the lowest driver "
                                          "quality, that no pick may take (0: none)")
    knn: int = Field(10, ge=1, le=256, description="neighbours of the density estimate")
    duplicate_cosine: float = Field(0.98, gt=0, le=1.0)
    pool_factor: float = Field(4.0, ge=1.0)
    exact_pool: int = Field(20_000, ge=1, description="larger pools take `batch` per round")
    exact_limit: int = Field(20_000, ge=2, description="above it: k-means cells, not k-NN")
    batch: int = Field(256, ge=1)
    nprobe: int = Field(2, ge=1)
    seed: int = 0


@dataclass
class Candidates:
    """What the selection knows about each candidate clip (arrays aligned with clip_ids)."""

    clip_ids: list[str]
    n_frames: np.ndarray                       # int [N]
    vectors: np.ndarray                        # float32 [N, D], unit rows
    triggers: list[list[str]] | None = None    # fired trigger names per clip
    disagreement: np.ndarray | None = None     # float [N], NaN where unknown
    quality: np.ndarray | None = None          # float [N] in [0, 1], NaN where unknown


@dataclass
class Selection:
    clip_ids: list[str]                 # in the order chosen
    explanations: list[str]
    utility: list[float]
    frames: int
    budget_frames: int
    total_frames: int
    stats: dict = field(default_factory=dict)


def centred_unit(vectors: np.ndarray) -> np.ndarray:
    """Vectors minus their mean, scaled to unit length: cosine then measures how clips differ
    from the typical clip (the network's ReLU features are all positive, which makes every
    raw cosine close to 1 and every clip a "near-duplicate")."""
    vec = np.asarray(vectors, np.float32)
    vec = vec - vec.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(vec, axis=1, keepdims=True)
    return np.ascontiguousarray(vec / np.where(norms > 0, norms, 1.0))


def percentile(x: np.ndarray) -> np.ndarray:
    """Percentile ranks in [0, 1]: 0 for the minimum (and NaN), 1 for the maximum."""
    from scipy.stats import rankdata

    x = np.asarray(x, np.float64)
    out = np.zeros(len(x))
    ok = ~np.isnan(x)
    if ok.sum() < 2:
        return out
    v = x[ok]
    r = rankdata(v, method="max")
    n_min = int((v == v.min()).sum())
    denom = max(1, len(v) - n_min)
    out[ok] = np.clip((r - n_min) / denom, 0.0, 1.0)
    return out


def trigger_scores(triggers: list[list[str]]) -> tuple[np.ndarray, dict[str, float]]:
    """Per clip: sum of log(1/share) of its triggers; and each trigger's weight."""
    n = len(triggers)
    counts: dict[str, int] = {}
    for names in triggers:
        for t in set(names):
            counts[t] = counts.get(t, 0) + 1
    weight = {t: math.log(n / c) + 0.1 for t, c in counts.items()}
    return np.array([sum(weight[t] for t in set(names)) for names in triggers]), weight


def select(c: Candidates, cfg: SelectionConfig = SelectionConfig(),
           threads: int | None = None) -> Selection:
    """Choose clips holding at most `cfg.budget` of the candidates' frames (module docstring)."""
    import time

    from opendojo.engine.index import ClipIndex, knn_self, near_duplicates

    t0 = time.perf_counter()
    n = len(c.clip_ids)
    frames = np.asarray(c.n_frames, np.int64)
    total = int(frames.sum())
    budget = int(math.floor(cfg.budget * total))
    vec = centred_unit(c.vectors)
    if n == 0 or budget <= 0:
        return Selection([], [], [], 0, budget, total, {"candidates": n})

    # -- utility
    trig = np.zeros(n) if c.triggers is None else trigger_scores(c.triggers)[0]
    dis = np.full(n, np.nan) if c.disagreement is None else np.asarray(c.disagreement, np.float64)
    if threads:
        import faiss

        faiss.omp_set_num_threads(threads)
    exact = n <= cfg.exact_limit
    k = min(cfg.knn, n - 1)
    if exact and k:
        # k-NN density over every candidate, exact (FAISS IndexFlatIP)
        index = ClipIndex(vec, exact_limit=cfg.exact_limit)
        sims, nbr = knn_self(index, vec, k)
        dist = np.where(np.isfinite(sims), 1.0 - sims, np.nan)
        with np.errstate(invalid="ignore"):
            rarity = np.nan_to_num(np.nanmean(dist, axis=1), nan=1.0)
        kind = index.kind
    elif k:
        # too many for k-NN over all: density of FAISS k-means cells (share of the
        # candidates in the clip's cell) plus the clip's distance from its cell's centre
        cells, resid, nlist = coarse_cells(vec, cfg.seed)
        counts = np.bincount(cells, minlength=nlist)
        rarity = np.log(n / counts[cells]) + resid / max(float(np.median(resid)), 1e-6)
        kind = f"kmeans{nlist}"
    else:
        rarity, kind = np.zeros(n), "none"
    t_knn = time.perf_counter() - t0
    p_trig, p_dis, p_rar = percentile(trig), percentile(dis), percentile(rarity)
    wsum = max(cfg.w_trigger + cfg.w_disagreement + cfg.w_rarity, 1e-12)
    interest = (cfg.w_trigger * p_trig + cfg.w_disagreement * p_dis + cfg.w_rarity * p_rar) / wsum
    q = np.ones(n) if c.quality is None else np.nan_to_num(np.asarray(c.quality, np.float64), nan=0.5)
    util = (cfg.floor + interest) * np.power(np.clip(q, 1e-6, 1.0), cfg.quality_power)

    t_util = time.perf_counter() - t0
    # -- near-duplicates, then the pool: the best clips holding pool_factor x the budget
    if exact and k:
        dup = near_duplicates(sims, nbr, util, cfg.duplicate_cosine)
    else:
        dup = np.zeros(n, bool)
    eligible = np.ones(n, bool)
    if c.quality is not None and cfg.drop_worst > 0:
        eligible = q >= np.quantile(q, cfg.drop_worst)
    live = np.flatnonzero(~dup & (frames <= budget) & eligible)
    covered, cov_frames, cov_explain = _coverage(vec, q if c.quality is not None else None, frames,
                                                 live, int(math.floor(cfg.coverage * budget)), cfg.seed)
    live = live[~np.isin(live, covered)]
    order = live[np.argsort(-util[live], kind="stable")]
    cum = np.cumsum(frames[order])
    pool = order[:int(np.searchsorted(cum, cfg.pool_factor * (budget - cov_frames))) + 1]
    if not exact and len(pool) > 1:
        # near-duplicates among the pool (approximate: FAISS IVF over the pool)
        pidx = ClipIndex(vec[pool], exact_limit=cfg.exact_limit, nprobe=cfg.nprobe, seed=cfg.seed)
        ps, pn = knn_self(pidx, vec[pool], min(4, len(pool) - 1))
        pdup = near_duplicates(ps, pn, util[pool], cfg.duplicate_cosine)
        dup[pool[pdup]] = True
        pool = pool[~pdup]

    t_pool = time.perf_counter() - t0
    # -- utility-weighted farthest-first
    picks, gaps = _farthest_first(vec[pool], util[pool], frames[pool], budget - cov_frames,
                                  1 if len(pool) <= cfg.exact_pool else cfg.batch,
                                  threads or 1, taken=vec[covered])
    chosen = np.concatenate([covered, pool[picks]]).astype(np.int64)
    explain = cov_explain + \
        [_explain(i, gap, c.triggers, dis, p_dis, rarity, p_rar, q, c.quality is not None)
         for i, gap in zip(pool[picks], gaps)]
    stats = {"candidates": n, "near_duplicates": int(dup.sum()), "below_quality": int((~eligible).sum()),
             "coverage_clips": int(len(covered)), "coverage_frames": int(cov_frames), "pool": int(len(pool)),
             "density": kind, "density_s": round(t_knn, 3), "utility_s": round(t_util, 3),
             "pool_s": round(t_pool, 3),
             "seconds": round(time.perf_counter() - t0, 3)}
    return Selection([c.clip_ids[i] for i in chosen], explain, [float(util[i]) for i in chosen],
                     int(frames[chosen].sum()), budget, total, stats)


def _farthest_first(x: np.ndarray, u: np.ndarray, f: np.ndarray, budget: int,
                    batch: int, threads: int = 1,
                    taken: np.ndarray | None = None) -> tuple[list[int], list[float]]:
    """Greedy: argmax u * d (d: distance to the nearest taken, `taken` included) while
    frames fit the budget.

    Distances are updated with torch on `threads` threads (a busy machine makes BLAS
    threads spin: one thread is often faster for these thin products)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        X = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        U = torch.from_numpy(np.asarray(u, np.float32))
        F = torch.from_numpy(np.asarray(f, np.int64))
        m = len(x)
        d = torch.full((m,), 2.0)            # the farthest two unit vectors can be
        if taken is not None and len(taken) and m:
            best = (X @ torch.from_numpy(np.ascontiguousarray(taken, np.float32)).T).max(1).values
            torch.minimum(d, torch.sqrt(torch.clamp(2.0 - 2.0 * best, min=0.0)), out=d)
        alive = torch.ones(m, dtype=torch.bool)
        sq = (X * X).sum(1)
        used = 0
        picks: list[int] = []
        gaps: list[float] = []
        while True:
            alive &= F <= budget - used
            if not bool(alive.any()):
                break
            gain = torch.where(alive, U * d, torch.tensor(-float("inf")))
            if batch == 1:
                take = [int(torch.argmax(gain))]
            else:
                top = torch.topk(gain, min(batch, m)).indices
                top = top[torch.isfinite(gain[top])]
                xt = X[top]
                gram = (xt @ xt.T).numpy()
                dt = d[top].numpy()
                sqt = sq[top].numpy()
                kept: list[int] = []
                for a in range(len(top)):       # spread within the round too
                    if kept:
                        da = np.sqrt(np.maximum(sqt[a] + sqt[kept] - 2 * gram[a, kept], 0)).min()
                        if da < dt[a]:
                            continue
                    kept.append(a)
                take = top[kept].tolist()
            new = []
            for j in take:
                if int(F[j]) <= budget - used:
                    used += int(F[j])
                    picks.append(j)
                    dj = float(d[j])
                    gaps.append(dj if dj < 2.0 else float("nan"))
                    alive[j] = False
                    new.append(j)
            if not new:
                break
            # unit rows: |a - b| = sqrt(2 - 2 a.b), so only the largest dot product matters
            best = (X @ X[new].T).max(1).values
            torch.minimum(d, torch.sqrt(torch.clamp(2.0 - 2.0 * best, min=0.0)), out=d)
        return picks, gaps
    finally:
        torch.set_num_threads(before)


def _coverage(vec: np.ndarray, quality: np.ndarray | None, frames: np.ndarray, live: np.ndarray,
              budget: int, seed: int) -> tuple[np.ndarray, int, list[str]]:
    """Typical driving by good drivers (module docstring, step 2): the chosen candidates
    (indices), their frames, and one explanation each."""
    import heapq

    if budget <= 0 or len(live) == 0:
        return np.zeros(0, np.int64), 0, []
    q = np.ones(len(vec)) if quality is None else quality
    good = live[q[live] >= np.median(q[live])]
    # FAISS asks for ~39 points per centroid; fewer cells than that on small pools
    nlist = max(1, min(_auto_cells(len(good)), len(good) // 39))
    cells, dist, nlist = coarse_cells(vec[good], seed, nlist=nlist)
    # one sort: by cell, then best driver first, then nearest the centre
    order = np.lexsort((dist, -q[good], cells))
    sizes = np.bincount(cells, minlength=nlist)
    members = np.split(good[order], np.cumsum(sizes)[:-1])
    heap = [(-float(sizes[j]), j) for j in range(nlist) if sizes[j]]
    heapq.heapify(heap)
    taken_from = np.zeros(nlist, np.int64)
    nxt = np.zeros(nlist, np.int64)
    chosen: list[int] = []
    explain: list[str] = []
    used = 0
    while heap:
        _, j = heapq.heappop(heap)
        cand = members[j]
        while nxt[j] < len(cand) and used + frames[cand[nxt[j]]] > budget:
            nxt[j] += 1                                   # too long for what is left
        if nxt[j] >= len(cand):
            continue
        i = int(cand[nxt[j]])
        nxt[j] += 1
        used += int(frames[i])
        chosen.append(i)
        taken_from[j] += 1
        explain.append(f"coverage: typical of {int(sizes[j])} similar clips of good drivers "
                       f"(cell {j + 1} of {nlist})" +
                       (f"; driver quality {q[i]:.2f}" if quality is not None else ""))
        heapq.heappush(heap, (-float(sizes[j]) / (taken_from[j] + 1), j))
    return np.asarray(chosen, np.int64), used, explain


def _auto_cells(n: int) -> int:
    return int(min(1024, max(16, 2 ** round(np.log2(max(np.sqrt(n) / 4, 1))))))


def coarse_cells(x: np.ndarray, seed: int = 0,
                 nlist: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """FAISS k-means cells of unit vectors: (cell per row, distance to its centre, cells).
    `nlist` cells (default: about sqrt(n) / 4, 16 to 1024)."""
    import faiss

    n, dim = x.shape
    nlist = min(int(nlist or _auto_cells(n)), n)
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(n, size=min(n, 40 * nlist), replace=False)]
    # a small pool has fewer than FAISS's 39 points per cell, by design: no warning for it
    km = faiss.Kmeans(dim, nlist, niter=10, seed=seed, spherical=True, verbose=False,
                      min_points_per_centroid=1)
    km.train(np.ascontiguousarray(sample))
    dist, cells = km.index.search(x, 1)
    return cells[:, 0].astype(np.int64), np.sqrt(np.maximum(dist[:, 0], 0)), nlist


def _explain(i, gap, triggers, dis, p_dis, rarity, p_rar, q, has_q) -> str:
    parts = []
    if triggers is not None and triggers[i]:
        parts.append("triggers: " + ", ".join(sorted(triggers[i])))
    if not np.isnan(dis[i]) and p_dis[i] >= 0.5:
        parts.append(f"network disagrees with the driver ({dis[i]:.2f} m, top {100 * (1 - p_dis[i]):.0f}%)")
    if p_rar[i] >= 0.75:
        parts.append(f"rare: few similar clips (density in the lowest {100 * (1 - p_rar[i]):.0f}%)")
    if has_q:
        parts.append(f"driver quality {q[i]:.2f}")
    if not np.isnan(gap):
        parts.append(f"diverse: {gap:.2f} from the nearest clip chosen before it")
    else:
        parts.append("first pick: highest utility")
    return "; ".join(parts)
