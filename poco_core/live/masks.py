"""Extraction weights from ROI footprints: cell masks without shared pixels, and surround neuropil.

suite2p's conventions (facts from its documented defaults, own code):
- cell mask: the footprint's weights on pixels no other ROI uses (``allow_overlap=False``),
  normalised to sum 1, so F is the weighted mean of the ROI's own pixels;
- pixels "belonging to a cell" (excluded from every neuropil mask): a pixel with a weight that is
  not below the local median of the max-weight image (``lam_percentile=50``, window 5 x the median
  ROI radius);
- neuropil mask: the ROI grown by ``inner_radius=2`` pixels (4-connected) is excluded, then a
  rectangle around it grows in 5-px steps until it holds more than ``min_pixels=350`` non-cell
  pixels outside that ring; Fneu is their plain mean.
"""
from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp

INNER_RADIUS = 2
MIN_NEUROPIL_PIXELS = 350
LAM_PERCENTILE = 50.0
GROW_STEP = 5


def roi_radii(footprints: sp.csr_matrix, shape: tuple[int, int]) -> np.ndarray:
    """Per-ROI radius (px): twice the root mean eigenvalue of its weighted pixel covariance (a disk of radius R gives R)."""
    fp = footprints.tocsr()
    radii = np.zeros(fp.shape[0])
    for i in range(fp.shape[0]):
        cols, w = fp.indices[fp.indptr[i]:fp.indptr[i + 1]], fp.data[fp.indptr[i]:fp.indptr[i + 1]]
        if len(cols) < 2 or w.sum() <= 0:
            continue
        yx = np.stack([cols // shape[1], cols % shape[1]]).astype(float)
        cov = np.cov(yx, aweights=np.maximum(w, 0))
        radii[i] = 2 * np.sqrt(max(np.linalg.eigvalsh(cov).mean(), 0.0))
    return radii


def cell_weights(footprints: sp.csr_matrix) -> sp.csr_matrix:
    """(N, P) weights: shared pixels dropped, each row normalised to sum 1 (empty rows stay empty)."""
    fp = sp.csr_matrix(footprints, dtype=np.float32, copy=True)
    fp.data = np.maximum(fp.data, 0)
    fp.eliminate_zeros()
    owners = np.bincount(fp.indices, minlength=fp.shape[1])
    fp.data[owners[fp.indices] > 1] = 0
    fp.eliminate_zeros()
    sums = np.asarray(fp.sum(axis=1)).ravel()
    sums[sums == 0] = 1
    return sp.csr_matrix(sp.diags(1 / sums) @ fp, dtype=np.float32)


def cell_pixels(footprints: sp.csr_matrix, shape: tuple[int, int], percentile: float = LAM_PERCENTILE) -> np.ndarray:
    """(Ly, Lx) bool: pixels that belong to some cell and so to no neuropil mask."""
    fp = footprints.tocsc()
    lammap = np.zeros(shape[0] * shape[1], np.float32)
    coo = fp.tocoo()
    np.maximum.at(lammap, coo.col, coo.data)
    lammap = lammap.reshape(shape)
    if percentile <= 0:
        return lammap > 0
    radius = float(np.median(roi_radii(footprints, shape))) if fp.shape[0] else 1.0
    size = max(int(radius * 5), 1)
    filt = ndi.percentile_filter(lammap, percentile, size=size)
    return ~((lammap < filt) | (lammap == 0))


def neuropil_weights(footprints: sp.csr_matrix, shape: tuple[int, int], inner_radius: int = INNER_RADIUS,
                     min_pixels: int = MIN_NEUROPIL_PIXELS) -> sp.csr_matrix:
    """(N, P) surround masks, each row 1/n on its n pixels (a plain mean)."""
    ly, lx = shape
    valid = ~cell_pixels(footprints, shape)
    integral = np.pad(valid.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    count = lambda y0, y1, x0, x1: int(integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0])  # noqa: E731
    cross = ndi.generate_binary_structure(2, 1)
    fp = footprints.tocsr()
    rows, cols = [], []
    for i in range(fp.shape[0]):
        pix = fp.indices[fp.indptr[i]:fp.indptr[i + 1]]
        if len(pix) == 0:
            continue
        ys, xs = pix // lx, pix % lx
        # the ROI grown by inner_radius, in a local window
        y0, y1 = max(ys.min() - inner_radius, 0), min(ys.max() + inner_radius + 1, ly)
        x0, x1 = max(xs.min() - inner_radius, 0), min(xs.max() + inner_radius + 1, lx)
        ring = np.zeros((y1 - y0, x1 - x0), bool)
        ring[ys - y0, xs - x0] = True
        ring = ndi.binary_dilation(ring, cross, iterations=inner_radius)
        n_ring = int(valid[y0:y1, x0:x1][ring].sum())
        ry, rx = np.nonzero(ring)
        b = (ry.min() + y0, ry.max() + y0 + 1, rx.min() + x0, rx.max() + x0 + 1)
        for step in range(1, 101):
            g = GROW_STEP * step
            box = (max(b[0] - g, 0), min(b[1] + g, ly), max(b[2] - g, 0), min(b[3] + g, lx))
            if count(*box) - n_ring > min_pixels:
                break
        mask = valid[box[0]:box[1], box[2]:box[3]].copy()
        mask[ry + y0 - box[0], rx + x0 - box[2]] = False
        my, mx = np.nonzero(mask)
        rows.append(np.full(len(my), i))
        cols.append((my + box[0]) * lx + mx + box[2])
    if not rows:
        return sp.csr_matrix((fp.shape[0], ly * lx), dtype=np.float32)
    r, c = np.concatenate(rows), np.concatenate(cols)
    counts = np.bincount(r, minlength=fp.shape[0]).astype(np.float32)
    return sp.csr_matrix((1 / counts[r], (r, c)), shape=(fp.shape[0], ly * lx), dtype=np.float32)
