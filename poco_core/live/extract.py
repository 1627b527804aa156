"""ROI traces from raw frames as they arrive: register each frame, extract F and neuropil, write them.

``FrameExtractor`` holds the per-segmentation work (reference, cell and neuropil weights as one
sparse matrix, so a frame costs two FFTs, a bilinear shift and one sparse product).
``ExtractionSource`` follows TIFF frames (``frames.TiffFrames``), runs the extractor on every new
frame and is itself a live source (``poll() -> (k, N)`` raw F), so ``LiveSession`` and the Live
dock use it like any other source; with ``out`` it also writes a growing project HDF5 file (the
SWMR writer): ``traces`` = raw F, ``extra_traces/Fneu`` = neuropil (as the suite2p reader stores
it, so ``PreprocessConfig(neuropil_coef=0.7)`` applies the same way), ``per_frame/shift`` (dy, dx)
and ``per_frame/peak`` (the registration's correlation peak). With ``plane=None`` every plane of a
volume is extracted with its own plane's segmentation (``VolumeExtractor``) into one recording
(``planes.py``); the shifts are then (dy, dx) per plane.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from dataclasses import replace as dc_replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from poco_core.base.errors import RecordingError
from poco_core.data.recording import Recording
from poco_core.live.frames import TIFF_SUFFIXES, TiffFrames
from poco_core.live.planes import plane_segmentations, tile_images, tile_planes
from poco_core.live.masks import INNER_RADIUS, MIN_NEUROPIL_PIXELS, cell_weights, neuropil_weights
from poco_core.live.registration import MAX_SHIFT, SMOOTH_SIGMA, TAPER, RigidRegistration, reference_from_frames
from poco_core.live.replay import H5LiveWriter

NO_REFERENCE_FORMATS = ("caiman",)  # their stored image is a correlation image, not a mean image


@dataclass
class ExtractionConfig:
    """Registration and extraction settings (suite2p's defaults)."""

    max_shift: float = MAX_SHIFT
    smooth_sigma: float = SMOOTH_SIGMA
    taper: float = TAPER
    inner_radius: int = INNER_RADIUS
    min_neuropil_pixels: int = MIN_NEUROPIL_PIXELS
    reference_frames: int = 200  # frames averaged for a reference when the segmentation has none


def is_tiff_source(path: str | Path) -> bool:
    """A TIFF file, or a folder holding at least one (what ``ExtractionSource`` follows)."""
    path = Path(path)
    if path.is_dir():
        return any(p.suffix.lower() in TIFF_SUFFIXES for p in path.iterdir())
    return path.suffix.lower() in TIFF_SUFFIXES


def extracted_path(frames: str | Path) -> Path:
    """Where the Live dock writes the traces it extracts: ``<frames>_extracted.h5`` beside the frames."""
    frames = Path(frames)
    return frames.with_name(f"{frames.stem if frames.is_file() else frames.name}_extracted.h5")


def load_segmentation(path: str | Path, plane: int | None = None) -> Recording:
    """A recording with ROI footprints (suite2p folder, NWB, CaImAn, project .h5); suite2p's own
    registration reference (refImg) is taken as its image when present; ``plane``: suite2p's plane."""
    from poco_core.data.io import detect_format, load_recording

    fmt = detect_format(Path(path))
    rec = load_recording(path, anatomy="refImg", plane=plane) if fmt == "suite2p" else load_recording(path)
    if fmt == "suite2p" and rec.anatomy is None:
        rec = load_recording(path, plane=plane)
    if rec.footprints is None or rec.image_shape is None:
        raise RecordingError(path, "this recording has no ROI footprints (pixel masks), so traces cannot be extracted with it")
    return rec


def segmentation_reference(rec: Recording) -> np.ndarray | None:
    """The segmentation's mean/reference image, or None when it has none that registration can use."""
    if rec.anatomy is None or np.ndim(rec.anatomy) != 2 or rec.provenance.get("format") in NO_REFERENCE_FORMATS:
        return None
    return np.asarray(rec.anatomy, dtype=np.float32)


class FrameExtractor:
    """Registration to ``reference`` and extraction with the segmentation's footprints."""

    def __init__(self, footprints: sp.csr_matrix, shape: tuple[int, int], reference: np.ndarray,
                 config: ExtractionConfig | None = None):
        self.config = config or ExtractionConfig()
        self.shape = tuple(shape)
        if tuple(reference.shape) != self.shape:
            raise RecordingError(None, f"reference image is {reference.shape[0]} x {reference.shape[1]} px, "
                                       f"the segmentation {self.shape[0]} x {self.shape[1]} px")
        self.n_rois = footprints.shape[0]
        neuropil = neuropil_weights(footprints, self.shape, self.config.inner_radius, self.config.min_neuropil_pixels)
        self.weights = sp.vstack([cell_weights(footprints), neuropil]).tocsr().astype(np.float32)
        self.registration = RigidRegistration(reference, self.config.max_shift, self.config.smooth_sigma, self.config.taper)

    @property
    def reference(self) -> np.ndarray:
        return self.registration.reference

    def process(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(k, Ly, Lx) frames -> F (k, N), Fneu (k, N), shifts (k, 2) [dy, dx], peaks (k,)."""
        k = len(frames)
        values = np.empty((k, 2 * self.n_rois), np.float32)
        shifts = np.empty((k, 2), np.float32)
        peaks = np.empty(k, np.float32)
        for i, frame in enumerate(frames):
            registered, shifts[i], peaks[i] = self.registration.register(frame)
            values[i] = self.weights @ registered.ravel()
        return values[:, :self.n_rois], values[:, self.n_rois:], shifts, peaks


class VolumeExtractor:
    """All planes of a volume, each registered and extracted with its own plane's segmentation
    (``planes.py``); the ROIs are the planes' in plane order."""

    def __init__(self, planes: list[FrameExtractor]):
        self.planes = planes
        self.n_rois = sum(p.n_rois for p in planes)

    @property
    def reference(self) -> np.ndarray:
        return tile_images([p.reference for p in self.planes])

    def process(self, volumes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(k, P, Ly, Lx) volumes -> F (k, N), Fneu (k, N), shifts (k, 2P) [dy0, dx0, dy1, ...], peaks (k, P)."""
        parts = [p.process(volumes[:, k]) for k, p in enumerate(self.planes)]
        f, fneu, shifts = (np.concatenate([q[i] for q in parts], axis=1) for i in range(3))
        return f, fneu, shifts, np.stack([q[3] for q in parts], axis=1)


class ExtractionSource:
    """A live source of raw ROI fluorescence extracted from TIFF frames (see the module docstring).

    ``notes`` collects what the user should be told (reference computed, files ignored, metadata
    used); ``last_shift``, ``rate_hz`` (frames extracted per second of extraction work) and
    ``frame_ms`` (per-frame register+extract wall times; ``frame_cpu_ms`` in CPU time) describe the work so far.
    """

    def __init__(self, frames: str | Path | TiffFrames, segmentation: str | Path | Recording,
                 out: str | Path | None = None, fs: float | None = None, follow: bool = True,
                 config: ExtractionConfig | None = None, **frame_options):
        self.frames = frames if isinstance(frames, TiffFrames) else TiffFrames(frames, follow=follow, fs=fs, **frame_options)
        self.volumes = self.frames.all_planes  # every plane, one segmentation each, as one recording (planes.py)
        if self.volumes:
            self.planes = plane_segmentations(segmentation, load_segmentation)
        else:
            self.planes = [segmentation if isinstance(segmentation, Recording) else load_segmentation(segmentation)]
        for plane in self.planes:
            if plane.footprints is None or plane.image_shape is None:
                raise RecordingError(plane.source or None, "the segmentation has no ROI footprints")
        self.segmentation = tile_planes(self.planes) if self.volumes else self.planes[0]
        self.config = config or ExtractionConfig()
        self.out = None if out is None else Path(out)
        if self.out is not None and self.segmentation.source and self.out.resolve() == Path(self.segmentation.source).resolve():
            raise RecordingError(self.out, "the output would overwrite the segmentation")
        self._fs = fs
        self.notes: list[str] = []
        self.extractor: FrameExtractor | VolumeExtractor | None = None
        self.writer: H5LiveWriter | None = None
        self.shifts: list[np.ndarray] = []
        self.frame_ms: list[float] = []
        self.frame_cpu_ms: list[float] = []  # the same, in this thread's CPU time (what a shared CPU does not inflate)
        self.last_shift: tuple[float, float] | None = None
        self._pending: list[np.ndarray] = []
        self._delivered = 0
        self._note_count = 0
        self.started = time.monotonic()
        references = [segmentation_reference(p) for p in self.planes]
        self._reference = None if any(r is None for r in references) else references  # one per plane
        for ref, plane in zip(self._reference or [], self.planes):
            self._check_plane(ref.shape, plane)

    # -- the LiveSource interface
    @property
    def fs(self) -> float:
        return float(self._fs or self.frames.fs or self.segmentation.fs)

    @property
    def path(self) -> Path:
        """The TIFF file or folder followed."""
        return self.frames.path

    @property
    def roi_ids(self) -> np.ndarray:
        return self.segmentation.roi_ids

    @property
    def session(self) -> str:
        return self.segmentation.session

    @property
    def n_frames(self) -> int:
        return self._delivered

    @property
    def status(self) -> str:
        return self.frames.status

    @property
    def rate_hz(self) -> float:
        return 1000.0 / float(np.mean(self.frame_ms[-100:])) if self.frame_ms else 0.0

    def poll(self) -> np.ndarray:
        new = self.frames.poll()
        self.notes.extend(self.frames.notes[self._note_count:])
        self._note_count = len(self.frames.notes)
        if len(new):
            self._check_size(new.shape[1:])
        if self.extractor is None and self._reference is not None:
            self._start(self._reference, "the segmentation's image")  # the masks are built here, in the polling thread
            if self.out is not None and self._fs is not None and not self.out.exists():
                # the rate is given: create the file now, not on the first frame's clock (~60 ms); an
                # earlier output stays as it is until frames do arrive
                self._open_writer()
        if self.extractor is None:
            self._pending.extend(new)
            enough = len(self._pending) >= self.config.reference_frames
            if not (enough or (self.frames.finished and self._pending)):
                return np.zeros((0, self.segmentation.n_rois), np.float32)
            first = np.stack(self._pending[:self.config.reference_frames])
            self._start([reference_from_frames(first[:, k]) for k in range(len(self.planes))] if self.volumes
                        else [reference_from_frames(first)], f"computed from the first {min(len(self._pending), self.config.reference_frames)} frames "
                        "(the segmentation has no reference image)")
            new, self._pending = np.stack(self._pending), []
        if not len(new):
            return np.zeros((0, self.segmentation.n_rois), np.float32)
        t0, c0 = time.perf_counter(), time.thread_time()
        f, fneu, shifts, peaks = self.extractor.process(new)
        self.frame_ms.extend([(time.perf_counter() - t0) * 1000 / len(new)] * len(new))
        self.frame_cpu_ms.extend([(time.thread_time() - c0) * 1000 / len(new)] * len(new))
        if self.out is not None and self.writer is None:
            self._open_writer()
        if self.writer is not None:
            self.writer.append(f, extra={"Fneu": fneu}, per_frame={"shift": shifts, "peak": peaks.reshape(len(f), -1)})
        self.shifts.append(shifts.reshape(-1, 2))  # one row per plane and frame
        dy, dx = shifts[-1].reshape(-1, 2).mean(axis=0)  # the planes' mean
        self.last_shift = (float(dy), float(dx))
        self._delivered += len(f)
        return f

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.frames.close()

    # -- work
    def _check_size(self, shape: tuple[int, ...]) -> None:
        """Frames (Ly, Lx), or volumes (planes, Ly, Lx), against the segmentation(s)."""
        if self.volumes:
            if shape[0] != len(self.planes):
                raise RecordingError(self.frames.path, f"volumes have {shape[0]} planes but {len(self.planes)} "
                                                       "plane segmentations were given")
            shape = shape[1:]
        for plane in self.planes:
            self._check_plane(shape, plane)

    def _check_plane(self, shape: tuple[int, ...], plane: Recording) -> None:
        want = tuple(plane.image_shape)
        if tuple(shape) != want:
            raise RecordingError(self.frames.path, f"frames are {shape[0]} x {shape[1]} px but the segmentation "
                                                   f"({plane.source or 'in memory'}) is {want[0]} x {want[1]} px")

    def _start(self, references: list[np.ndarray], where: str) -> None:
        extractors = []
        for ref, plane in zip(references, self.planes):
            self._check_plane(ref.shape, plane)
            extractors.append(FrameExtractor(plane.footprints, plane.image_shape, ref, self.config))
        self.extractor = VolumeExtractor(extractors) if self.volumes else extractors[0]
        self.reference_from = where
        if "computed" in where:
            self.notes.append(f"reference image {where}")

    def _open_writer(self) -> None:
        """The output file, created before the first frame when the rate is given, else with the
        first frames (when the TIFF metadata's rate is known)."""
        seg = self.segmentation
        if self._fs is None and self.frames.fs is None and seg.provenance.get("fs_placeholder"):
            self.notes.append(f"frame rate unknown (no fs given, no ScanImage metadata, and the segmentation's "
                              f"{seg.fs:g} Hz is a placeholder): the output says {seg.fs:g} Hz; pass fs")
        template = dc_replace(
            seg, traces=np.zeros((0, seg.n_rois), np.float32), fs=self.fs, anatomy=self.extractor.reference,
            extra_traces={}, source=str(self.frames.path),
            provenance={"extracted_from": str(self.frames.path), "segmentation": seg.source,
                        "reference": self.reference_from, "extraction": asdict(self.config)})
        n = len(self.planes)
        self.writer = H5LiveWriter(self.out, template, extra=("Fneu",), per_frame={"shift": 2 * n, "peak": n})

    def summary(self) -> dict:
        """Frames, ROIs, shift range and time per frame so far (what ``poco extract`` prints)."""
        shifts = np.concatenate(self.shifts) if self.shifts else np.zeros((0, 2), np.float32)
        ms = np.asarray(self.frame_ms)
        return {
            "frames": self._delivered, "rois": int(self.segmentation.n_rois),
            "image_shape": list(self.segmentation.image_shape), "fs": self.fs,
            "reference": getattr(self, "reference_from", None),
            "shift_dy": [float(shifts[:, 0].min()), float(shifts[:, 0].max())] if len(shifts) else None,
            "shift_dx": [float(shifts[:, 1].min()), float(shifts[:, 1].max())] if len(shifts) else None,
            "ms_per_frame_median": float(np.median(ms)) if len(ms) else None,
            "ms_per_frame_p99": float(np.percentile(ms, 99)) if len(ms) else None,
            "out": str(self.out) if self.out is not None and self._delivered else None, "notes": list(self.notes),
        }
