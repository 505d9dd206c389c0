"""The aerofoil data set's split: by aerofoil, never by row, with near-copies of one aerofoil kept together.

Test aerofoils must be unseen in training. The UIUC database holds some shapes twice under two names, a few
ten-thousandths of a chord apart, so a random split by index alone can put one name in training and the
other in test; :func:`near_duplicate_groups` finds them and :func:`split_foils` keeps each group in one split.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

#: Stored contours closer than this (RMS point distance, chords) are one aerofoil for the split. The data's two
#: closest pairs (goe432/goe442 at 1.4e-4, giiig/giiif at 2.4e-4) differ in XFOIL lift by 0.003-0.004 on
#: average, XFOIL's own scatter; the next pair (5.5e-4) by 0.011, as much as two members of one family do.
NEAR_DUPLICATE_RMS = 5e-4


def near_duplicate_groups(coords: np.ndarray, tol: float = NEAR_DUPLICATE_RMS) -> np.ndarray:
    """Group labels ``(F,)`` of contours ``(F, K, 2)``, to keep near-copies in one split.

    Contours within ``tol`` RMS of one another, directly or through a chain of such pairs, share a label.
    """
    flat = np.asarray(coords, dtype=np.float64).reshape(len(coords), -1)
    sq = (flat**2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * flat @ flat.T, 0) / (flat.shape[1] // 2)
    return connected_components(csr_matrix(d2 < tol**2), directed=False)[1]


def split_foils(
    n_foils: int, val_fraction: float, test_fraction: float, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Random disjoint train/val/test aerofoil indices (split by aerofoil, never by row).

    ``groups``: a label per aerofoil (:func:`near_duplicate_groups`); aerofoils that share one go together, to
    the split of the one that the random order puts first, so the splits' sizes move by up to the groups' sizes
    (the shipped data: 2 aerofoils, from training to test).

    Raises:
        ValueError: too few aerofoils to split, ``groups`` of another length, or groups so large that a split
            ends up empty.
    """
    perm = np.random.default_rng(seed).permutation(n_foils)
    n_test = max(1, round(test_fraction * n_foils))
    n_val = max(1, round(val_fraction * n_foils))
    if n_foils - n_test - n_val < 1:
        raise ValueError(
            f"n_foils={n_foils} is too few to split: {n_test} test and {n_val} validation aerofoils "
            "leave none for training"
        )
    where = np.zeros(n_foils, dtype=np.int64)  # 0 test, 1 validation, 2 training, in the order of perm
    where[n_test : n_test + n_val], where[n_test + n_val :] = 1, 2
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n_foils,):
            raise ValueError(f"groups must hold one label per aerofoil, shape ({n_foils},), got {groups.shape}")
        label = groups[perm]
        _, first = np.unique(label, return_index=True)  # each group's first position in perm
        where = where[first][np.searchsorted(np.unique(label), label)]
        empty = [name for k, name in enumerate(("test", "validation", "training")) if not (where == k).any()]
        if empty:
            raise ValueError(f"groups of near-copies leave no {' and no '.join(empty)} aerofoil: too few groups "
                             f"({len(first)}) for a split of {n_foils} aerofoils")
    return perm[where == 2], perm[where == 1], perm[where == 0]
