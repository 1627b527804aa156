"""A DirectLabelColormap that stays fast at 80,000 labels (painting whole-brain recordings).

napari 0.9's DirectLabelColormap validates every colour one by one (transform_color, ~2.7 s for
80,000 labels) and maps labels to texture values through a numba typed dict that it fills in a
Python loop, twice (~1.3 s). Here the same colour dict is validated in one array call and the
label -> texture mapping is a numpy lookup table; everything else (shader, selection mode,
small-int data) is napari's own code. It leans on napari internals (pinned <0.10 in pyproject);
`colors.direct_colormap` falls back to napari's own class if they move.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.colormaps._accelerated_cmap import (
    MAPPING_OF_UNKNOWN_VALUE,
    minimum_dtype_for_labels,
)
from pydantic import field_validator


class FastDirectLabelColormap(DirectLabelColormap):
    """Label value -> RGBA for many labels; colours must be given as RGBA float arrays."""

    @field_validator("color_dict", mode="before")
    @classmethod
    def _validate_color_dict(cls, v, values):
        keys = list(v)
        colors = np.clip(np.asarray([v[k] for k in keys], dtype=np.float32).reshape(len(keys), 4), 0, 1)
        res = dict(zip(keys, colors))
        res.setdefault(None, np.zeros(4, np.float32))
        bg = values.data.get("background_value", 0)
        res.setdefault(bg, np.zeros(4, np.float32))
        return res

    @cached_property
    def _codes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labels, texture value of each, palette of unique colours) computed with numpy."""
        keys = [k for k in self.color_dict if k is not None]
        labels = np.array(keys, dtype=np.int64)
        colors = np.stack([self.color_dict[k] for k in keys]) if keys else np.zeros((0, 4), np.float32)
        # group colours by their 8-bit RGBA (what the texture shows anyway): a 1-D unique is fast
        key = np.rint(colors * 255).astype(np.uint32) @ np.array([1 << 24, 1 << 16, 1 << 8, 1], dtype=np.uint32)
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        return labels, inverse.ravel() + 1, colors[first]

    @cached_property
    def _num_unique_colors(self) -> int:
        return len(self._codes[2])

    @cached_property
    def _label_mapping_and_color_dict(self):
        labels, codes, palette = self._codes
        mapping = {None: MAPPING_OF_UNKNOWN_VALUE, **dict(zip(labels.tolist(), codes.tolist()))}
        colors = {MAPPING_OF_UNKNOWN_VALUE: self.default_color, **{i + 1: c for i, c in enumerate(palette)}}
        return mapping, colors

    @cached_property
    def _lut(self) -> np.ndarray | None:
        """Texture value per label 0..max, or None when labels are negative (napari's path then)."""
        labels, codes, _ = self._codes
        if len(labels) and labels.min() < 0:
            return None
        lut = np.full(int(labels.max(initial=0)) + 1, MAPPING_OF_UNKNOWN_VALUE,
                      dtype=minimum_dtype_for_labels(self._num_unique_colors + 2))
        lut[labels] = codes
        return lut

    def _clear_cache(self):
        super()._clear_cache()
        for key in ("_codes", "_lut"):
            self.__dict__.pop(key, None)

    def _texture_values(self, values):
        lut = self._lut
        v = np.asarray(values)
        if lut is None or self.use_selection or v.dtype.itemsize <= 2:
            return None
        out = np.full(v.shape, MAPPING_OF_UNKNOWN_VALUE, dtype=lut.dtype)
        inside = (v >= 0) & (v < len(lut))
        out[inside] = lut[v[inside]]
        return out if isinstance(values, np.ndarray) else out.dtype.type(out)

    def _data_to_texture(self, values):
        out = self._texture_values(values)
        return super()._data_to_texture(values) if out is None else out

    def _selection_as_minimum_dtype(self, dtype: np.dtype) -> int:
        out = self._texture_values(np.array([self.selection], dtype=dtype))
        return super()._selection_as_minimum_dtype(dtype) if out is None else int(out[0])

    def map(self, values):
        v = np.asarray(values)
        out = None if v.ndim == 0 else self._texture_values(v)
        if out is None:
            return super().map(values)
        table = self._label_mapping_and_color_dict[1]
        return np.stack([table[k] for k in range(len(table))]).astype(np.float32)[out]
