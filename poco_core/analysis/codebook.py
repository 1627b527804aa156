"""What CalM's tokens mean: each code's decoded shape, how often the quantizer uses it on a
recording, and how well each ROI survives tokenising (reconstruction r and MSE per ROI, so
badly tokenised ROIs can be flagged)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from poco_core.base.errors import PocoError
from poco_core.training.sampling import gather_windows


@dataclass
class CodebookReport:
    prototypes: np.ndarray  # (K, L) each code decoded on its own
    counts: np.ndarray  # (K,) tokens assigned to each code
    roi_r: dict[str, np.ndarray]  # session -> (N,) mean reconstruction r per ROI
    roi_mse: dict[str, np.ndarray]  # session -> (N,) reconstruction MSE per ROI

    @property
    def codes_used(self) -> float:
        """Share of the K codes that occur at least once."""
        return float((self.counts > 0).mean())

    @property
    def perplexity(self) -> float:
        share = self.counts[self.counts > 0] / max(self.counts.sum(), 1)
        return float(np.exp(-(share * np.log(share)).sum()))

    def summary(self) -> dict[str, Any]:
        r = np.concatenate(list(self.roi_r.values())) if self.roi_r else np.array([np.nan])
        mse = np.concatenate(list(self.roi_mse.values())) if self.roi_mse else np.array([np.nan])
        return {"codes_used": self.codes_used, "perplexity": self.perplexity, "rec_r": float(np.nanmean(r)),
                "rec_mse": float(np.nanmean(mse)), "codebook_size": len(self.counts)}


@torch.no_grad()
def codebook_report(model: Any, data, split: str = "test") -> CodebookReport:
    """Tokenise the non-overlapping (C+P)-frame windows of `split` of PreparedData with CalM's quantizer."""
    if not hasattr(model, "nq"):
        raise PocoError(f"model {getattr(model, 'name', '?')!r} has no tokenizer (only calm has a codebook)")
    from poco_core.models.calm.quantizer import pearson_rows

    nq = model.nq
    was = nq.training
    nq.eval()
    length = model.config.context + model.config.horizon
    length -= length % model.config.window
    k = model.config.codebook_size
    counts = torch.zeros(k, dtype=torch.long)
    roi_r, roi_mse = {}, {}
    dtype = nq.codebook.dtype
    try:
        for sd in data.sessions:
            wins = sd.windows(split, length, stride=length)
            w = torch.from_numpy(gather_windows(wins, list(range(len(wins))))).to(nq.codebook.device, dtype)
            b, _, n = w.shape
            y = w.transpose(1, 2).reshape(b * n, length)
            z = nq.tokenize(y)
            y_hat = nq.decode_tokens(z)
            roi_r[sd.session] = pearson_rows(y_hat, y).view(b, n).float().nanmean(0).cpu().numpy()
            roi_mse[sd.session] = (y_hat - y).square().mean(-1).view(b, n).float().mean(0).cpu().numpy()
            counts += torch.bincount(z.flatten().cpu(), minlength=k)
        protos = nq.prototypes().float().cpu().numpy()
    finally:
        nq.train(was)
    return CodebookReport(protos, counts.numpy(), roi_r, roi_mse)
