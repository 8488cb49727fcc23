"""Summary measures of an optimal geometry (defined in ``docs/sweeps.md``).

All measures are computed from the *block form* of the class Gram: a ``g x g`` matrix ``B``
over blocks of classes (``B_pq`` the cosine between a class of block ``p`` and a different
class of block ``q``), the number of classes per block and the block of every class. At
group level the blocks are the groups of equal counts; at class level every class is its
own block. This keeps every measure ``O(g^2)``, whatever ``k`` is.

Measures:

* ``etf_distance``: ``||M - E_k||_F``, ``E_k`` the simplex ETF Gram (1 on the diagonal,
  ``-1/(k-1)`` off it);
* ``cos_min``, ``cos_mean``, ``cos_max``: over all ordered pairs of distinct classes;
* ``cos_maj_maj``, ``cos_min_min``, ``cos_maj_min``: mean cosine over pairs of distinct
  majority classes, of distinct minority classes, and between the two sets;
* ``minority_collapse``: ``(cos_min_min - e) / (1 - e)`` with ``e = -1/(k-1)`` the
  cosine of the simplex ETF: 1 when the minority classes have collapsed onto one
  direction, 0 when they are as far apart as in the balanced optimum, so that larger means
  more collapse (measures of version 1, which older atlases hold, had ``1 - cos_min_min``);
* ``angle_min_deg``, ``angle_max_deg`` and ``angles_deg`` (the block angle matrix), in
  degrees, ``arccos`` of the cosines;
* ``rank``: as reported by the solve; ``min_tight_dim``: smallest ``d`` whose tightness
  row is tight (``None`` without tightness rows).

Given proven intervals of the cosines of the optimum (the cosine bars,
:mod:`scconvex.certificates.bars`), :func:`measure_bounds` turns them into proven
intervals of the optimum's measures: every scalar measure is monotone in each cosine, or
(``etf_distance``) a norm of the distance to a fixed matrix.

Majority and minority, one rule for every problem (``solve``, sweeps and the atlas): the
sorted distinct counts are cut at their largest ratio ``s_i / s_{i+1}``; classes above the
cut are the majority, below it the minority (for two distinct counts, such as a STEP
problem with ``R > 1``, these are the two groups). With one distinct count (a balanced
problem, STEP with ``R = 1``) there is no imbalance: every class counts as both, so the
three named cosines are the mean cosine, the limit ``R -> 1`` of a STEP problem.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError


@dataclass(frozen=True)
class BlockGeometry:
    """Class Gram in block form.

    Attributes
    ----------
    gram : ndarray, shape (g, g)
        Cosines between classes of blocks ``p`` and ``q`` (on the diagonal: two different
        classes of the same block; ignored for blocks of one class).
    sizes : ndarray of int, shape (g,)
        Classes per block.
    block_of : ndarray of int, shape (k,)
        Block of each class.
    """

    gram: np.ndarray
    sizes: np.ndarray
    block_of: np.ndarray

    @property
    def k(self) -> int:
        return len(self.block_of)

    def class_gram(self) -> np.ndarray:
        """The ``k x k`` class Gram (memory ``k^2``)."""
        M = np.array(self.gram[np.ix_(self.block_of, self.block_of)], dtype=float)
        np.fill_diagonal(M, 1.0)
        return M

    def to_dict(self) -> dict:
        return {"gram": self.gram.tolist(), "sizes": self.sizes.tolist(),
                "block_of": self.block_of.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> BlockGeometry:
        return cls(np.asarray(data["gram"], dtype=float), np.asarray(data["sizes"], dtype=int),
                   np.asarray(data["block_of"], dtype=int))


def geometry_of(data: dict) -> BlockGeometry | None:
    """Block geometry of a solve result dictionary (``SolveResult.to_dict()``).

    Uses the ``groups`` entry at group level, the cosines of ``class_means`` at sample
    level (the block means in ``class_gram`` are not the cosines between the class means
    when the sample Gram is not collapsed) and the ``class_gram`` otherwise; ``None`` when
    the result holds no geometry (a failed solve).
    """
    groups = data.get("groups")
    if isinstance(groups, dict) and groups.get("gram") is not None:
        return BlockGeometry(np.asarray(groups["gram"], dtype=float),
                             np.asarray(groups["sizes"], dtype=int),
                             np.asarray(groups["block_of"], dtype=int))
    means = data.get("class_means")
    M = means.get("cosines") if isinstance(means, dict) else data.get("class_gram")
    if M is None:
        return None
    M = np.asarray(M, dtype=float)
    k = M.shape[0]
    return BlockGeometry(M, np.ones(k, dtype=int), np.arange(k))


def default_minority(counts: Sequence[int]) -> np.ndarray:
    """Boolean mask of minority classes: below the largest ratio between distinct counts."""
    counts = np.asarray(counts)
    distinct = np.unique(counts)[::-1]
    if len(distinct) < 2:
        return np.zeros(len(counts), dtype=bool)
    ratios = distinct[:-1] / distinct[1:]
    cut = distinct[int(np.argmax(ratios))]
    return counts < cut


MEASURES_VERSION = 2
"""Version of the definitions above, stored with the measures (version 1, without this
key: ``minority_collapse = 1 - cos_min_min`` and the STEP minority of
:func:`step_minority`)."""


def minority_collapse(cos_min_min: float, k: int) -> float:
    """``(cos_min_min - e) / (1 - e)``, ``e = -1/(k-1)``: 1 collapsed, 0 as in the ETF."""
    etf = -1.0 / (k - 1)
    return (cos_min_min - etf) / (1.0 - etf)


def step_minority(k: int, rho: float) -> np.ndarray:
    """Minority mask of a STEP problem: classes after the first ``round(rho k)`` (the rule
    of measures of version 1)."""
    mask = np.ones(k, dtype=bool)
    mask[: int(round(rho * k))] = False
    return mask


def _pair_mean(geo: BlockGeometry, a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine over ordered pairs ``i != j`` with ``i`` in set ``a``, ``j`` in ``b``."""
    g = len(geo.sizes)
    ca = np.bincount(geo.block_of[a], minlength=g).astype(float)
    cb = np.bincount(geo.block_of[b], minlength=g).astype(float)
    both = np.bincount(geo.block_of[a & b], minlength=g).astype(float)
    pairs = ca.sum() * cb.sum() - both.sum()
    if pairs <= 0:
        return math.nan
    total = ca @ geo.gram @ cb - both @ np.diag(geo.gram)
    return float(total / pairs)


def _pair_weights(geo: BlockGeometry) -> np.ndarray:
    """Number of ordered pairs of distinct classes in each block pair."""
    s = geo.sizes.astype(float)
    W = np.outer(s, s)
    W[np.diag_indices_from(W)] = s * (s - 1)
    return W


def summary(geo: BlockGeometry, minority: np.ndarray | None = None,
            counts: Sequence[int] | None = None, rank: int | None = None,
            tight_dims: Sequence[int] | None = None,
            bounds: tuple[np.ndarray, np.ndarray] | None = None,
            version: int = MEASURES_VERSION) -> dict:
    """Summary measures of a geometry (see the module docstring).

    Parameters
    ----------
    geo : BlockGeometry
    minority : ndarray of bool, shape (k,), optional
        Minority classes; default from ``counts`` by :func:`default_minority` (with one
        distinct count every class is majority and minority).
    counts : sequence of int, optional
        Class counts, needed when ``minority`` is not given.
    rank : int, optional
    tight_dims : sequence of int, optional
        Dimensions found tight by tightness rows.
    bounds : (ndarray, ndarray), optional
        Proven lower and upper bounds of the optimum's cosines in the block form of
        ``geo``; they give ``bounds`` (:func:`measure_bounds`). Without them ``bounds``
        is None: the measures describe the answer only, and nothing about the optimum's
        measures is checked.
    version : int
        :data:`MEASURES_VERSION`, or 1 for the definitions that older files and atlases
        hold (no rule for balanced counts, ``minority_collapse = 1 - cos_min_min``, no
        ``measures_version`` key), to re-check them.

    Returns
    -------
    dict
        JSON-safe apart from NaN floats (write it with :func:`scconvex.files.jsonable`).
    """
    k = geo.k
    balanced = False
    if minority is None:
        if counts is None:
            raise InvalidInputError("summary needs a minority mask or the counts")
        minority = default_minority(counts)
        balanced = version >= 2 and len(set(np.asarray(counts).tolist())) == 1
    minority = np.asarray(minority, dtype=bool)
    if minority.shape != (k,):
        raise InvalidInputError(f"minority mask must have shape ({k},)")
    majority = ~minority
    if balanced:
        majority = minority = np.ones(k, dtype=bool)
    W = _pair_weights(geo)
    present = W > 0
    cos = geo.gram[present]
    etf = -1.0 / (k - 1)
    dist = math.sqrt(float(np.sum(W * (geo.gram - etf) ** 2)))
    mm = _pair_mean(geo, minority, minority)
    angles = np.degrees(np.arccos(np.clip(geo.gram, -1.0, 1.0)))
    angles[~present] = math.nan
    tight = sorted(int(d) for d in tight_dims) if tight_dims else []
    proven = (None if bounds is None else
              measure_bounds(geo, *bounds, minority, majority, version=version))
    out = {
        "bounds": proven,
        "etf_distance": dist,
        "cos_min": float(cos.min()), "cos_max": float(cos.max()),
        "cos_mean": float(np.sum(W * geo.gram) / W.sum()),
        "cos_maj_maj": _pair_mean(geo, majority, majority),
        "cos_min_min": mm,
        "cos_maj_min": _pair_mean(geo, majority, minority),
        "minority_collapse": minority_collapse(mm, k) if version >= 2 else 1.0 - mm,
        "minority_classes": int(minority.sum()),
        "angle_min_deg": float(np.degrees(np.arccos(min(1.0, float(cos.max()))))),
        "angle_max_deg": float(np.degrees(np.arccos(max(-1.0, float(cos.min()))))),
        "angles_deg": angles.tolist(),
        "rank": None if rank is None else int(rank),
        "min_tight_dim": tight[0] if tight else None,
    }
    if version >= 2:
        out["measures_version"] = MEASURES_VERSION
    return out


def measure_bounds(geo: BlockGeometry, lower: np.ndarray, upper: np.ndarray,
                   minority: np.ndarray, majority: np.ndarray | None = None, *,
                   version: int = MEASURES_VERSION) -> dict:
    """Proven intervals ``[low, high]`` of the optimum's scalar measures.

    ``lower`` and ``upper`` bound the optimum's cosines entrywise (block form of ``geo``).
    The means are linear in the cosines with non-negative weights, ``cos_min``/``cos_max``
    and the angles monotone; ``etf_distance`` takes the nearest and the farthest value of
    each interval from the ETF cosine. Rounded outwards by ``1e-12``.
    """
    k = geo.k
    lo_geo = BlockGeometry(np.asarray(lower, dtype=float), geo.sizes, geo.block_of)
    hi_geo = BlockGeometry(np.asarray(upper, dtype=float), geo.sizes, geo.block_of)
    W = _pair_weights(geo)
    present = W > 0
    etf = -1.0 / (k - 1)
    near = np.where((lo_geo.gram <= etf) & (etf <= hi_geo.gram), 0.0,
                    np.minimum(np.abs(lo_geo.gram - etf), np.abs(hi_geo.gram - etf)))
    far = np.maximum(np.abs(lo_geo.gram - etf), np.abs(hi_geo.gram - etf))
    majority = ~minority if majority is None else majority
    out = {
        "etf_distance": (math.sqrt(float(np.sum(W * near ** 2))),
                         math.sqrt(float(np.sum(W * far ** 2)))),
        "cos_min": (float(lo_geo.gram[present].min()), float(hi_geo.gram[present].min())),
        "cos_max": (float(lo_geo.gram[present].max()), float(hi_geo.gram[present].max())),
        "cos_mean": (float(np.sum(W * lo_geo.gram) / W.sum()),
                     float(np.sum(W * hi_geo.gram) / W.sum())),
    }
    for name, a, b in (("cos_maj_maj", majority, majority), ("cos_min_min", minority, minority),
                       ("cos_maj_min", majority, minority)):
        out[name] = (_pair_mean(lo_geo, a, b), _pair_mean(hi_geo, a, b))
    mm = out["cos_min_min"]
    out["minority_collapse"] = ((minority_collapse(mm[0], k), minority_collapse(mm[1], k))
                                if version >= 2 else (1.0 - mm[1], 1.0 - mm[0]))
    cmax, cmin = out["cos_max"], out["cos_min"]
    out["angle_min_deg"] = (_degrees(cmax[1]), _degrees(cmax[0]))
    out["angle_max_deg"] = (_degrees(cmin[1]), _degrees(cmin[0]))
    return {name: [lo - 1e-12, hi + 1e-12] if math.isfinite(lo) and math.isfinite(hi)
            else [lo, hi] for name, (lo, hi) in out.items()}


def _degrees(c: float) -> float:
    return float(np.degrees(np.arccos(min(1.0, max(-1.0, c)))))
