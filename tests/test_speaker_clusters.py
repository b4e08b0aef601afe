"""Speaker clustering without scipy's packages gives scipy's answers, bit for bit: the distances,
the flat clusters and their numbering, the assignments (what diarization.json is built from)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import pdist

from video_extract.speech import speaker_clusters as sc
from video_extract.speech.diarize import _tree


def _rows(rng, n: int, d: int, rounded: bool = False) -> np.ndarray:
    x = rng.normal(size=(n, d))
    x[: n // 2] += 3 * rng.normal(size=d)  # two groups, as two voices
    if rounded:  # many equal distances: ties in the tree
        x = np.round(x)
        x[np.abs(x).sum(1) == 0] = 1.0
    return x


@pytest.mark.parametrize("d", [1, 2, 5, 192])
def test_cosine_distances_are_scipys_bits(d):
    rng = np.random.default_rng(d)
    for n in (2, 3, 17, 600):
        x = _rows(rng, n, d, rounded=n == 17)
        assert np.array_equal(sc.cosine_distances(x), pdist(x, "cosine")), (n, d)
    x = rng.normal(size=(9, d)).astype(np.float32)  # diarization's embeddings are float32
    assert np.array_equal(sc.cosine_distances(x), pdist(np.asarray(x, np.float64), "cosine"))


def test_flat_clusters_are_scipys_numbered_alike_by_distance_and_by_count():
    rng = np.random.default_rng(0)
    checked = 0
    for trial in range(300):
        n = int(rng.integers(2, 90))
        x = _rows(rng, n, int(rng.choice([3, 192])), rounded=trial % 4 == 0)
        z = _tree(x)
        for t in (0.0, 0.2, 0.6, 1.0, float(rng.uniform(0, 2))):
            assert np.array_equal(sc.flat_clusters(z, threshold=t), fcluster(z, t, criterion="distance")), (trial, t)
            checked += 1
        for k in range(1, min(n, 9) + 2):  # up to and past n: scipy's singleton numbering
            assert np.array_equal(sc.flat_clusters(z, count=k), fcluster(z, k, criterion="maxclust")), (trial, k)
            checked += 1
    assert checked > 3000


def test_assignments_are_scipys_ties_and_float32_included():
    rng = np.random.default_rng(1)
    for trial in range(3000):
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 9)))
        cost = rng.integers(0, 3, size=shape).astype(float) if trial % 2 else -rng.uniform(-1, 1, size=shape)  # odd: many ties
        if trial % 3 == 0:
            cost = cost.astype(np.float32)
        ours, scipys = sc.assign(cost), linear_sum_assignment(cost)
        assert np.array_equal(ours[0], scipys[0]) and np.array_equal(ours[1], scipys[1]), cost


def test_clustering_imports_none_of_scipys_packages():
    """A fresh process, as a cold CLI run is: the tree, its cut and the assignment leave scipy's
    packages out of ``sys.modules`` (~0.26 s of a cold run; 39 MB for scipy.spatial), only the
    two compiled loops diarization calls are loaded."""
    code = """
import sys
import numpy as np
from video_extract.speech import diarize as seg
rng = np.random.default_rng(0)
voices = 4 * rng.normal(size=(3, 192))
vectors = (voices[np.arange(60) % 3] + rng.normal(size=(60, 192))).astype(np.float32)  # local speaker s is voice s
labels = seg.cluster(seg.UnitEmbeddings(vectors, np.arange(60).reshape(20, 3)), np.full((20, 3), 2.0))
assert all(len(set(labels[:, s])) == 1 for s in range(3)) and len(set(labels[0])) == 3, labels
assert sorted(m for m in sys.modules if m.split(".")[0] == "scipy") == ["scipy.optimize._lsap", "scipy.spatial._distance_wrap"], sorted(sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
