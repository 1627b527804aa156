"""CalM's settings, grouped as the model is built: quantizer (tokenizer), dual-axis transformer
and rollout. The Training dock shows all three and sends only fields that differ from the
chosen preset, so the paper's or the tiny preset's values stay the defaults
(poco_core.models.calm.config). The Finetuning dock shows the rollout group alone (the
settings a trained model may change, CalMConfig.RUNTIME), filled from the checkpoint."""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QSpinBox, QVBoxLayout, QWidget
from superqt import QCollapsible

from poco_core.models.calm.config import CalMConfig
from poco_napari.forms import Rows, collapsible

ROLLOUT = "CalM rollout"  # the group of CalMConfig.RUNTIME, settable on a trained model too
Input = QSpinBox | QDoubleSpinBox
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
    ROLLOUT: [
        ("temperature", "temperature", "0 = greedy; above 0 samples tokens"),
        ("n_samples", "sampled rollouts", "rollouts averaged after decoding (with temperature > 0)"),
        ("top_k", "top-k", "sample among the k likeliest tokens (0 = all)"),
    ],
}



def field_input(name: str) -> Input:
    """A spin box for a CalMConfig field (float fields get decimals)."""
    if isinstance(CalMConfig.__dataclass_fields__[name].default, float):
        return QDoubleSpinBox(decimals=3, minimum=0.0, maximum=100.0, singleStep=0.05)
    return QSpinBox(minimum=0, maximum=10_000_000)


def settings_group(title: str, expanded: bool, first_rows: Rows | None = None) -> tuple[QCollapsible, dict[str, Input]]:
    """One of GROUPS as a collapsible form (after `first_rows`) and its inputs by field name."""
    inputs: dict[str, Input] = {}
    rows = list(first_rows or [])
    for name, label, tip in GROUPS[title]:
        inputs[name] = box = field_input(name)
        box.setToolTip(tip)
        rows.append((label, box))
    return collapsible(title, rows, expanded=expanded), inputs


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
        self.inputs: dict[str, Input] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.groups: list[QCollapsible] = []
        for title in GROUPS:
            first = not self.groups
            group, inputs = settings_group(title, expanded=first, first_rows=[("preset", self.preset)] if first else [])
            self.inputs.update(inputs)
            self.groups.append(group)
            layout.addWidget(group)
        self._load_preset()

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


class RolloutSettings(QWidget):
    """The rollout group alone, for a trained CalM model (the Finetuning dock): `load` shows a
    checkpoint's values, `values()` gives all of them for the job."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.group, self.inputs = settings_group(ROLLOUT, expanded=True)
        layout.addWidget(self.group)

    def load(self, config: dict[str, Any]) -> None:
        for name, box in self.inputs.items():
            box.setValue(config.get(name, CalMConfig.__dataclass_fields__[name].default))

    def values(self) -> dict[str, Any]:
        return {name: box.value() for name, box in self.inputs.items()}
