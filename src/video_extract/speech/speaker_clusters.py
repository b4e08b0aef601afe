"""scipy's answers for the speaker clustering of a short recording, without importing scipy.

Importing ``scipy.spatial``, ``scipy.cluster`` and ``scipy.optimize`` took ~0.26 s of CPU in a
cold CLI run of a 10 s clip, more than its clustering itself. Here are the same results from
numpy and Python: the same bits, checked against scipy in tests/test_speaker_clusters.py.

- ``cosine_distances``: ``pdist(x, "cosine")`` as scipy's C loop computes it, up to
  ``SMALL_ROWS`` rows (its cost grows as rows squared in Python; above, scipy's loop is called
  and its import is small beside the work).
- ``flat_clusters``: ``fcluster`` by distance or by count (``maxclust``): a port of scipy's
  depth-first walk, so the cluster numbers come in scipy's order.
- ``assign``: ``linear_sum_assignment`` of a local speaker to a centroid, by trying every
  assignment where there are few; scipy decides a near tie, whose winner depends on its algorithm.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np

#: Rows up to which ``cosine_distances`` computes in numpy (~50 ms at 300 rows; scipy's C loop
#: 2 ms, after a 0.26 s import).
SMALL_ROWS = 300
#: Assignments tried at most per call (3 local speakers and 8 centroids: 336).
MAX_TRIED = 512
#: Totals closer than this to the best are a near tie: scipy's algorithm picks the winner.
NEAR_TIE = 1e-9


def cosine_distances(x: np.ndarray) -> np.ndarray:
    """Condensed cosine distances of the rows of ``x`` (float64), bit for bit scipy's.

    scipy's wheel computes each dot product in two lanes (even and odd columns, SSE2), adds the
    lanes, then the last column of an odd count; norms the same way; ``1 - dot / (|u| |v|)``,
    clipped to [0, 2]. Here each step is one numpy operation over all the pairs of a row.
    """
    x = np.ascontiguousarray(x, np.float64)
    m, d = x.shape
    if m > SMALL_ROWS:
        from scipy.spatial.distance import pdist

        return pdist(x, "cosine")
    half = d - d % 2
    even, odd = np.ascontiguousarray(x[:, 0:half:2].T), np.ascontiguousarray(x[:, 1:half:2].T)
    norms = np.sqrt(_two_lanes(even, odd, even, odd, x[:, half:], x[:, half:]))
    out = np.empty(m * (m - 1) // 2)
    start = 0
    for i in range(m - 1):
        rest = slice(i + 1, m)
        dot = _two_lanes(even[:, i : i + 1], odd[:, i : i + 1], even[:, rest], odd[:, rest], x[i, half:], x[rest, half:])
        cosine = dot / (norms[i] * norms[rest])
        np.copyto(cosine, np.copysign(1.0, cosine), where=np.abs(cosine) > 1.0)
        out[start : start + m - i - 1] = 1.0 - cosine
        start += m - i - 1
    return out


def _two_lanes(even_a, odd_a, even_b, odd_b, tail_a, tail_b) -> np.ndarray:
    """Dot products summed as scipy's compiled loop sums them: column by column in two lanes,
    then the lanes added, then the odd last column. Columns are the rows of ``even_*``/``odd_*``."""
    lane0 = np.zeros(even_b.shape[1])
    lane1 = np.zeros(even_b.shape[1])
    for k in range(even_b.shape[0]):
        lane0 += even_a[k] * even_b[k]
        lane1 += odd_a[k] * odd_b[k]
    total = lane0 + lane1
    if tail_b.size:
        total += (tail_a * tail_b).reshape(total.shape)
    return total


def flat_clusters(z: np.ndarray, threshold: float | None = None, count: int | None = None) -> np.ndarray:
    """``fcluster(z, threshold, "distance")`` or ``fcluster(z, count, "maxclust")``: numbered 1..k."""
    n = len(z) + 1
    highest = _highest_merges(z, n)
    if count is None:
        return _walk(z, highest, float(threshold), n)
    if count >= n:
        return np.arange(1, n + 1, dtype=np.intc)  # scipy numbers singletons in input order here
    # the lowest merge height that leaves at most ``count`` clusters, as scipy searches for it
    lower, upper = -1, n - 2
    while upper - lower > 1:
        middle = (lower + upper) >> 1
        if _clusters_at(z, highest, highest[middle], n, count) > count:
            lower = middle
        else:
            upper = middle
    return _walk(z, highest, highest[upper], n)


def _highest_merges(z: np.ndarray, n: int) -> np.ndarray:
    """The highest merge distance inside each node's subtree (scipy's ``max_dists``)."""
    highest = np.empty(n - 1)
    for i in range(n - 1):
        left, right, value = int(z[i, 0]), int(z[i, 1]), z[i, 2]
        if left >= n and highest[left - n] > value:
            value = highest[left - n]
        if right >= n and highest[right - n] > value:
            value = highest[right - n]
        highest[i] = value
    return highest


def _walk(z: np.ndarray, highest: np.ndarray, cutoff: float, n: int) -> np.ndarray:
    """scipy's ``cluster_monocrit``: from the root, left before right, a node at or under
    ``cutoff`` starts a cluster; leaves outside one are clusters of their own."""
    labels = np.zeros(n, np.intc)
    visited = np.zeros(2 * n - 1, bool)
    stack = [2 * n - 2]
    clusters, leader = 0, -1
    while stack:
        node = stack[-1] - n
        left, right = int(z[node, 0]), int(z[node, 1])
        if leader == -1 and highest[node] <= cutoff:
            leader = node
            clusters += 1
        if left >= n and not visited[left]:
            visited[left] = True
            stack.append(left)
            continue
        if right >= n and not visited[right]:
            visited[right] = True
            stack.append(right)
            continue
        for leaf in (left, right):
            if leaf < n:
                if leader == -1:
                    clusters += 1
                labels[leaf] = clusters
        if leader == node:
            leader = -1
        stack.pop()
    return labels


def _clusters_at(z: np.ndarray, highest: np.ndarray, cutoff: float, n: int, most: int) -> int:
    """How many clusters ``cutoff`` makes, counted until it passes ``most`` (scipy's count)."""
    visited = np.zeros(2 * n - 1, bool)
    stack = [2 * n - 2]
    found = 0
    while stack:
        node = stack[-1] - n
        left, right = int(z[node, 0]), int(z[node, 1])
        if highest[node] <= cutoff:
            found += 1
            if found > most:
                return found
            stack.pop()
            visited[left] = visited[right] = True
            continue
        descended = False
        for child in (left, right):
            if visited[child]:
                continue
            visited[child] = True
            if child >= n:
                stack.append(child)
                descended = True
                break
            found += 1
            if found > most:
                return found
        if not descended:
            stack.pop()
    return found


def assign(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``linear_sum_assignment(cost)``: (rows, columns) of the cheapest one-to-one assignment."""
    rows, cols = cost.shape
    if rows > cols:
        picked_cols, picked_rows = assign(cost.T)
        order = np.argsort(picked_rows)
        return picked_rows[order], picked_cols[order]
    if rows == 0:
        return np.zeros(0, int), np.zeros(0, int)
    if math.perm(cols, rows) <= MAX_TRIED:
        tried = _assignments(rows, cols)
        totals = cost[0, tried[:, 0]].copy()
        for r in range(1, rows):
            totals += cost[r, tried[:, r]]
        best = int(np.argmin(totals))
        if np.count_nonzero(totals <= totals[best] + NEAR_TIE * max(1.0, abs(totals[best]))) == 1:
            return np.arange(rows), tried[best].copy()
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment(cost)


@lru_cache(maxsize=64)
def _assignments(rows: int, cols: int) -> np.ndarray:
    """Every way to give ``rows`` rows distinct columns out of ``cols``, in scipy's row order."""
    out = np.array(list(itertools.permutations(range(cols), rows)), int)
    out.flags.writeable = False
    return out
