"""The one data model: every reader returns a Recording and everything downstream takes one."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from poco_core.base.errors import InvalidTraces


@dataclass
class Recording:
    """One imaging session.

    traces: (T, N) float32, frames x ROIs; may be a read-only np.memmap or an h5py-backed
        array view -- never copy it needlessly (use ``np.asarray`` only on slices).
    fs: sampling rate in Hz.
    roi_ids: (N,) str ids, unique within the session; they are the model's unit ids.
    footprints: sparse (N, Ly*Lx) pixel weights (csr), or None.
    centroids: (N, 2) float (y, x) in anatomy pixels, or None.
    anatomy: (Ly, Lx) mean/max projection, or (T, Ly, Lx) movie, or None.
    regions: (N,) str region label per ROI, or None.
    roi_names: (N,) str human-readable names, or None.
    session / dataset: names; the session name must be unique within a dataset.
    source: the path it was read from ("" for in-memory); provenance: reader details.
    extra_traces: other per-ROI series from the same file (e.g. "Fneu", "spks"), (T, N).
    roi_info: per-ROI extra columns (e.g. "iscell", "iscell_prob", "accepted", a pipeline's own
        "suite2p_snr" / "SNR_comp"), each (N,). "snr" is not a reader's column: it has one
        definition (std over the frame-to-frame noise std) computed from the traces.
    """

    traces: Any
    fs: float
    roi_ids: np.ndarray
    session: str = "session"
    dataset: str = "default"
    footprints: sp.csr_matrix | None = None
    centroids: np.ndarray | None = None
    anatomy: np.ndarray | None = None
    regions: np.ndarray | None = None
    roi_names: np.ndarray | None = None
    source: str = ""
    provenance: dict = field(default_factory=dict)
    extra_traces: dict = field(default_factory=dict)
    roi_info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = getattr(self.traces, "shape", None)
        if shape is None or len(shape) != 2:
            raise InvalidTraces(self.source or None, f"traces must be 2-D (frames x ROIs), got shape {shape}")
        n = shape[1]
        self.roi_ids = np.asarray(self.roi_ids).astype(str)
        if self.roi_ids.shape != (n,):
            raise InvalidTraces(self.source or None, f"{self.roi_ids.shape[0]} ROI ids for {n} ROIs")
        if len(set(self.roi_ids.tolist())) != n:
            raise InvalidTraces(self.source or None, "ROI ids are not unique")
        for name in ("regions", "roi_names"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v).astype(str)
                if v.shape != (n,):
                    raise InvalidTraces(self.source or None, f"{name} has {v.shape[0]} entries for {n} ROIs")
                setattr(self, name, v)
        if self.centroids is not None:
            self.centroids = np.asarray(self.centroids, dtype=float)
            if self.centroids.shape[0] != n:
                raise InvalidTraces(self.source or None, f"{self.centroids.shape[0]} centroids for {n} ROIs")
        if self.footprints is not None:
            self.footprints = sp.csr_matrix(self.footprints)
            if self.footprints.shape[0] != n:
                raise InvalidTraces(self.source or None, f"{self.footprints.shape[0]} footprints for {n} ROIs")
        if not (np.isfinite(self.fs) and self.fs > 0):
            raise InvalidTraces(self.source or None, f"sampling rate must be a positive number, got {self.fs}")

    def __repr__(self) -> str:
        """One line: what it is and where it came from (the arrays are never printed)."""
        fmt = self.provenance.get("format")
        extra = f", extra {sorted(self.extra_traces)}" if self.extra_traces else ""
        return (f"Recording(session={self.session!r}, dataset={self.dataset!r}, {self.n_frames} frames x {self.n_rois} ROIs "
                f"at {self.fs:g} Hz ({self.duration_s:.4g} s){extra}{f', {fmt}' if fmt else ''}"
                f"{f', from {self.source!r}' if self.source else ''})")

    @property
    def n_frames(self) -> int:
        return int(self.traces.shape[0])

    @property
    def n_rois(self) -> int:
        return int(self.traces.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fs

    @property
    def image_shape(self) -> tuple[int, int] | None:
        """(Ly, Lx) of the field of view, from the anatomy or the footprints."""
        if self.anatomy is not None:
            return tuple(self.anatomy.shape[-2:])
        return self.provenance.get("image_shape")

    def roi_centroids(self) -> np.ndarray | None:
        """Centroids, computed from footprints (weighted mean pixel) when not stored."""
        if self.centroids is not None:
            return self.centroids
        if self.footprints is None or self.image_shape is None:
            return None
        ly, lx = self.image_shape
        fp = self.footprints.tocsr()
        w = np.asarray(fp.sum(axis=1)).ravel()
        w[w == 0] = 1.0
        idx = np.arange(ly * lx)
        ys, xs = idx // lx, idx % lx
        return np.stack([fp @ ys / w, fp @ xs / w], axis=1)

    def label_image(self) -> np.ndarray | None:
        """(Ly, Lx) int32 label image: ROI i gets label i+1 where it has the largest weight."""
        if self.footprints is None or self.image_shape is None:
            return None
        ly, lx = self.image_shape
        fp = self.footprints.tocsc()
        best = np.zeros(ly * lx, dtype=float)
        labels = np.zeros(ly * lx, dtype=np.int32)
        coo = fp.tocoo()
        order = np.argsort(coo.data)  # later (larger) weights overwrite smaller ones
        labels[coo.col[order]] = coo.row[order] + 1
        best[coo.col[order]] = coo.data[order]
        return labels.reshape(ly, lx)

    def select_rois(self, idx: np.ndarray) -> "Recording":
        """A recording with a subset of ROIs (e.g. iscell filtering); copies only the traces subset."""
        idx = np.asarray(idx)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return replace(
            self,
            traces=np.asarray(self.traces[:, idx], dtype=np.float32),
            roi_ids=self.roi_ids[idx],
            footprints=None if self.footprints is None else self.footprints[idx],
            centroids=pick(self.centroids),
            regions=pick(self.regions),
            roi_names=pick(self.roi_names),
            extra_traces={k: np.asarray(v[:, idx]) for k, v in self.extra_traces.items()},
            roi_info={k: np.asarray(v)[idx] for k, v in self.roi_info.items()},
            provenance={**self.provenance, "selected_rois": int(len(idx))},
        )

    def with_traces(self, traces: np.ndarray, **provenance: Any) -> "Recording":
        """Same ROIs, new traces (e.g. preprocessed); provenance records what was done."""
        return replace(self, traces=traces, provenance={**self.provenance, **provenance})
