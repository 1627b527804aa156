"""CalM: neural quantizer (tokens per neuron) + dual-axis transformer (CALM_SPEC.md).

- `config.CalMConfig` (paper defaults, `preset="tiny"`), `quantizer.NeuralQuantizer`,
  `transformer.DualAxisTransformer` and its training corruptions, `model.CalM` (registry name `calm`).
"""
from poco_core.models.calm.config import CalMConfig
from poco_core.models.calm.model import CalM

__all__ = ["CalM", "CalMConfig"]
