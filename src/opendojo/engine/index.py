"""Nearest neighbours over clip embeddings through FAISS.

`ClipIndex(vectors)` builds an inner-product index over unit vectors (so scores are cosine
similarities): an exact `IndexFlatIP` up to `exact_limit` vectors, an `IndexIVFFlat`
(k-means cells, `nprobe` of them searched per query) above it, which is what keeps a
density estimate over a million clips within seconds. `similar(store, clip_id, k)` answers
`dojo clips similar ID`; `near_duplicates` finds clips to drop before selection.
"""

from __future__ import annotations

import numpy as np

EXACT_LIMIT = 50_000


class ClipIndex:
    """A FAISS index over float32 unit vectors [N, D]; `search` returns (cosine, row index)."""

    def __init__(self, vectors: np.ndarray, exact_limit: int = EXACT_LIMIT, nprobe: int = 2,
                 seed: int = 0, threads: int | None = None):
        import faiss

        if threads:
            faiss.omp_set_num_threads(threads)
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        self.n, self.dim = x.shape
        if self.n <= exact_limit:
            self.kind = "flat"
            self.index = faiss.IndexFlatIP(self.dim)
        else:
            nlist = int(min(4096, max(64, 2 ** round(np.log2(np.sqrt(self.n))))))
            self.kind = f"ivf{nlist}"
            quantizer = faiss.IndexFlatIP(self.dim)
            self.index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            sample = x[rng.choice(self.n, size=min(self.n, 40 * nlist), replace=False)]
            self.index.cp.seed = seed
            self.index.cp.niter = 10
            self.index.train(sample)
            self.index.nprobe = nprobe
        self.index.add(x)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        sims, idx = self.index.search(q, min(k, self.n))
        return sims, idx


def knn_self(index: ClipIndex, vectors: np.ndarray, k: int,
             batch: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's k nearest others (itself excluded): (cosine [N,k], index [N,k]); -1 pads."""
    n = len(vectors)
    sims = np.full((n, k), -np.inf, np.float32)
    idx = np.full((n, k), -1, np.int64)
    for s in range(0, n, batch):
        sv, iv = index.search(vectors[s:s + batch], k + 1)
        rows = np.arange(s, min(n, s + batch))[:, None]
        not_self = iv != rows
        # keep the first k that are not the query itself
        order = np.argsort(~not_self, axis=1, kind="stable")[:, :k]
        sims[s:s + batch] = np.take_along_axis(sv, order, 1)
        idx[s:s + batch] = np.take_along_axis(iv, order, 1)
    sims[idx < 0] = -np.inf
    return sims, idx


def near_duplicates(nbr_sims: np.ndarray, nbr_idx: np.ndarray, priority: np.ndarray,
                    threshold: float = 0.98) -> np.ndarray:
    """Bool [N]: True for a clip that has a neighbour at cosine >= `threshold` of higher
    priority (ties: the lower row index wins) which is itself kept. Greedy in priority order."""
    n = len(priority)
    order = np.lexsort((np.arange(n), -np.asarray(priority)))
    dup = np.zeros(n, bool)
    close = nbr_sims >= threshold
    if not close.any():
        return dup
    has = close.any(1)
    kept = ~has                      # clips with no close neighbour are always kept
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    for i in order[has[order]]:      # only clips with a close neighbour need a decision
        nb = nbr_idx[i][close[i]]
        nb = nb[nb >= 0]
        if np.any(kept[nb] & (rank[nb] < rank[i])):
            dup[i] = True
        else:
            kept[i] = True
    return dup


def similar(store, clip_id: str, k: int = 10) -> list[tuple[str, float]]:
    """The k clips most like `clip_id` by embedding: [(clip_id, cosine similarity of the
    embeddings centred on the store's mean)]."""
    from opendojo.engine.embeddings import read_embeddings
    from opendojo.errors import ClipNotFound

    store.row(clip_id)   # a clear error for an unknown id
    from opendojo.engine.select import centred_unit

    ids, vecs, _ = read_embeddings(store)
    vecs = centred_unit(vecs)
    pos = {c: i for i, c in enumerate(ids)}
    if clip_id not in pos:
        raise ClipNotFound(f"clip {clip_id} has no embedding yet (run `dojo engine embed`)")
    index = ClipIndex(vecs)
    sims, idx = index.search(vecs[pos[clip_id]][None], k + 1)
    out = [(ids[j], float(s)) for s, j in zip(sims[0], idx[0]) if j >= 0 and ids[j] != clip_id]
    return out[:k]
