"""scipy's answers for speaker clustering, without importing scipy's packages.

Importing ``scipy.spatial``, ``scipy.cluster`` and ``scipy.optimize`` took ~0.26 s of CPU in a
cold CLI run of a 10 s clip, more than its clustering itself, and ``scipy.spatial`` held 39 MB
more for the rest of an hour's run. Their Python packages pull in most of scipy; the compiled
loops diarization calls do not:

- ``cosine_distances``: ``pdist(x, "cosine")``, scipy's own C loop (``_distance_wrap``),
- ``assign``: ``linear_sum_assignment``, scipy's own C++ (``_lsap``): that is the function
  ``scipy.optimize`` exports,

each loaded from its file on its own (``_scipy_loop``), so the bits are scipy's by construction;
should that fail (a scipy laid out otherwise), the public functions are imported.

- ``flat_clusters``: ``fcluster`` by distance or by count (``maxclust``): a port of scipy's
  depth-first walk, so the cluster numbers come in scipy's order (its extension would import
  scipy's base package; the walk is a few lines), checked against scipy in
  tests/test_speaker_clusters.py.
"""

from __future__ import annotations

import glob
import importlib.machinery
import importlib.util
import os
import sys
import threading
import types

import numpy as np

_loading = threading.Lock()


def _scipy_loop(name: str) -> types.ModuleType | None:
    """scipy's compiled module ``scipy.<name>`` (e.g. ``spatial._distance_wrap``), loaded from
    its file without importing the packages above it; None where it cannot be."""
    full = f"scipy.{name}"
    with _loading:
        if full in sys.modules:
            return sys.modules[full]
        try:
            spec = importlib.util.find_spec("scipy")  # finds the package; imports nothing
            if spec is None or spec.origin is None:
                return None
            package, _, module = name.rpartition(".")
            found = glob.glob(os.path.join(os.path.dirname(spec.origin), *package.split("."), f"{module}.*.so"))
            if len(found) != 1:
                return None
            loader = importlib.machinery.ExtensionFileLoader(full, found[0])
            loaded = importlib.util.module_from_spec(importlib.util.spec_from_file_location(full, found[0], loader=loader))
            loader.exec_module(loaded)
        except (ImportError, OSError):
            return None
        sys.modules[full] = loaded  # what scipy's own package would import, should it be imported later
        return loaded


def cosine_distances(x: np.ndarray) -> np.ndarray:
    """Condensed cosine distances of the rows of ``x``: ``pdist(x, "cosine")``, float64."""
    x = np.ascontiguousarray(x, np.float64)
    loop = _scipy_loop("spatial._distance_wrap")
    if loop is None or not hasattr(loop, "pdist_cosine_double_wrap"):
        from scipy.spatial.distance import pdist

        return pdist(x, "cosine")
    out = np.empty(len(x) * (len(x) - 1) // 2)
    loop.pdist_cosine_double_wrap(x, out)
    return out


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
    loop = _scipy_loop("optimize._lsap")
    if loop is None or not hasattr(loop, "linear_sum_assignment"):
        from scipy.optimize import linear_sum_assignment

        return linear_sum_assignment(cost)
    return loop.linear_sum_assignment(cost)
