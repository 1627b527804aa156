"""CalM's settings in the Training dock, grouped as the model is built: quantizer (tokenizer),
dual-axis transformer and rollout. Only fields that differ from the chosen preset are sent,
so the paper's or the tiny preset's values stay the defaults (poco_core.models.calm.config)."""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QSpinBox, QVBoxLayout, QWidget
from superqt import QCollapsible

from poco_core.models.calm.config import CalMConfig
from poco_napari.forms import collapsible

GROUPS = {  # group title -> (field, label, tooltip)
    "CalM quantizer": [
        ("codebook_size", "codebook size K", "tokens in the shared vocabulary"),
        ("window", "frames per token L", "non-overlapping window each token covers"),
        ("nq_dim", "width C", "quantizer encoder/decoder width"),
        ("nq_steps", "quantizer steps", "training steps of stage 1 (the quantizer); the rest train the transformer"),
    ],
    "CalM transformer": [
        ("d_model", "width d", "dual-axis transformer width"),
        ("layers", "layers", "dual-axis blocks (neurons, then causal time)"),
        ("heads", "heads", "attention heads"),
        ("ss_prob", "scheduled sampling p", "share of windows whose block of inputs is the model's own predictions"),
        ("nr_prob", "neighbour replacement p", "share of input tokens swapped for a similar code"),
    ],
    "CalM rollout": [
        ("temperature", "temperature", "0 = greedy; above 0 samples tokens"),
        ("n_samples", "sampled rollouts", "rollouts averaged after decoding (with temperature > 0)"),
        ("top_k", "top-k", "sample among the k likeliest tokens (0 = all)"),
    ],
}


def _preset_values(preset: str) -> dict[str, Any]:
    config = CalMConfig(preset=preset)
    return {f.name: getattr(config, f.name) for f in fields(config)}


class CalMSettings(QWidget):
    """The three CalM groups plus the preset; ``overrides()`` gives the model-config fields set."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.preset = QComboBox()
        self.preset.addItem("paper scale", "")
        self.preset.addItem("tiny (CPU, minutes)", "tiny")
        self.preset.setCurrentIndex(1)
        self.preset.setToolTip("paper scale needs a GPU; tiny trains in minutes on a laptop CPU")
        self.preset.currentIndexChanged.connect(self._load_preset)
        self.inputs: dict[str, QSpinBox | QDoubleSpinBox] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.groups: list[QCollapsible] = []
        for title, rows in GROUPS.items():
            form = [("preset", self.preset)] if not self.groups else []
            for name, label, tip in rows:
                box = self._input(name)
                box.setToolTip(tip)
                self.inputs[name] = box
                form.append((label, box))
            self.groups.append(collapsible(title, form, expanded=not self.groups))
            layout.addWidget(self.groups[-1])
        self._load_preset()

    @staticmethod
    def _input(name: str) -> QSpinBox | QDoubleSpinBox:
        if isinstance(CalMConfig.__dataclass_fields__[name].default, float):
            return QDoubleSpinBox(decimals=3, minimum=0.0, maximum=100.0, singleStep=0.05)
        return QSpinBox(minimum=0, maximum=10_000_000)

    def _load_preset(self, *_: Any) -> None:
        values = _preset_values(self.preset.currentData())
        for name, box in self.inputs.items():
            box.setValue(values[name])

    def overrides(self) -> dict[str, Any]:
        """``preset`` and every field whose value differs from the preset's."""
        preset = self.preset.currentData()
        values = _preset_values(preset)
        out: dict[str, Any] = {"preset": preset} if preset else {}
        for name, box in self.inputs.items():
            if box.value() != values[name]:
                out[name] = box.value()
        return out
