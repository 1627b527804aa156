"""All planes of a volumetric (multi-plane) acquisition as one recording.

A segmentation covers one plane (suite2p writes ``plane0``, ``plane1``, ... folders, each with its
own ROIs and reference image), so a volume is registered and extracted plane by plane with that
plane's segmentation, and the ROIs of all planes become one recording: ids ``plane{k}_{id}``, a
``plane`` column in ``roi_info``, and the planes' images and footprints tiled side by side (as
suite2p's ``combined`` view tiles them), so the viewer shows every plane and each ROI where it is.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from poco_core.base.errors import RecordingError
from poco_core.data.recording import Recording

GAP_PX = 4  # blank columns between tiled planes


def plane_segmentations(source: str | Path | Recording | list, load) -> list[Recording]:
    """One segmentation per plane: a list (paths or recordings, in plane order), or a suite2p
    folder with ``plane0``.. ``planeN`` (``load`` reads one path, with ``plane=k`` for suite2p)."""
    if isinstance(source, (list, tuple)):
        recs = [s if isinstance(s, Recording) else load(s) for s in source]
    elif isinstance(source, Recording):
        recs = [source]
    else:
        from poco_core.data.io import detect_format
        from poco_core.data.io.suite2p import find_plane

        path = Path(source)
        if detect_format(path) != "suite2p":
            raise RecordingError(path, "all planes need one segmentation per plane: a suite2p folder with plane0, "
                                       "plane1, ... or one segmentation file per plane, in plane order")
        n_planes = find_plane(path)[2]
        recs = [load(path, plane=k) for k in range(n_planes)]
    if not recs:
        raise RecordingError(None, "no segmentation given")
    return recs


def tile_offsets(shapes: list[tuple[int, int]]) -> tuple[np.ndarray, tuple[int, int]]:
    """x offset of each plane in the tiled image, and the tiled image's shape."""
    heights = {int(s[0]) for s in shapes}
    if len(heights) != 1:
        raise RecordingError(None, f"planes have different heights ({sorted(heights)} px); they cannot be tiled")
    offsets = np.cumsum([0] + [int(s[1]) + GAP_PX for s in shapes])
    return offsets[:-1], (heights.pop(), int(offsets[-1] - GAP_PX))


def tile_images(images: list[np.ndarray | None]) -> np.ndarray:
    """Per-plane 2-D images side by side (a missing one stays blank)."""
    shapes = [np.shape(i) for i in images]
    offsets, shape = tile_offsets(shapes)
    out = np.zeros(shape, np.float32)
    for image, x0, (_, w) in zip(images, offsets, shapes):
        if image is not None:
            out[:, x0:x0 + w] = image
    return out


def tile_planes(planes: list[Recording]) -> Recording:
    """The planes' ROIs as one recording, images and footprints tiled left to right (see the module docstring)."""
    offsets, (ly, lx) = tile_offsets([tuple(p.image_shape) for p in planes])
    two_d = [p.anatomy if p.anatomy is not None and np.ndim(p.anatomy) == 2 else np.zeros(p.image_shape, np.float32)
             for p in planes]
    anatomy = tile_images(two_d)
    blocks = []
    for p, x0 in zip(planes, offsets):
        w = int(p.image_shape[1])
        fp = p.footprints.tocoo()
        y, x = np.divmod(fp.col, w)
        blocks.append(sp.csr_matrix((fp.data, (fp.row, y * lx + x + x0)), shape=(p.n_rois, ly * lx)))
    ids = np.concatenate([[f"plane{k}_{i}" for i in p.roi_ids] for k, p in enumerate(planes)])
    info_keys = set.intersection(*(set(p.roi_info) for p in planes)) if all(p.roi_info for p in planes) else set()
    info = {k: np.concatenate([np.asarray(p.roi_info[k]) for p in planes]) for k in sorted(info_keys)}
    info["plane"] = np.concatenate([np.full(p.n_rois, k) for k, p in enumerate(planes)])
    first = planes[0]
    session = first.session[:-len("_plane0")] if first.session.endswith("_plane0") else first.session
    centroids = regions = None
    if all(p.centroids is not None for p in planes):
        centroids = np.concatenate([np.asarray(p.centroids) + [0, x0] for p, x0 in zip(planes, offsets)])
    if all(p.regions is not None for p in planes):
        regions = np.concatenate([np.asarray(p.regions) for p in planes])
    return replace(
        first, traces=np.zeros((0, len(ids)), np.float32), roi_ids=ids, session=session,
        footprints=sp.vstack(blocks).tocsr(), centroids=centroids, anatomy=anatomy, regions=regions, roi_names=None,
        extra_traces={}, roi_info=info,
        provenance={**first.provenance, "planes": [p.source for p in planes], "plane_offsets_x": offsets.tolist()})
