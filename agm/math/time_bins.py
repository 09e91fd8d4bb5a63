"""The time-only weighting control: a loss weight that depends on t alone, matched to AGM's.

AGM's weights w_i = w(sg V(x_t,i)) (Eq. 11) come from a potential V that has no time input but is trained
to tell bridge samples from noise, so it may mostly read the noise level of x_t, i.e. act as a weight
w(t). This control tests that. During an AGM run the trainer accumulates, per t-bin k of K equal bins
of [0, 1],

    S_k = Σ_{steps, i: t_i ∈ bin k} w_i,      N_k = #{steps, i: t_i ∈ bin k},

and the control trains a model with no V on the fixed table

    W_k = (S_k / N_k) / ((1/K) Σ_j S_j / N_j),        w_i = W_{k(t_i)} / ((1/B) Σ_j W_{k(t_j)}),

i.e. AGM's mean weight at each time, normalised to unit mean over t ~ U[0, 1] and then to unit batch
mean, like Eq. (11). If the control matches AGM, V adds nothing beyond a time-dependent weight.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from agm.config.errors import DataError
from agm.io.atomic import write_json

DEFAULT_BINS = 50


def bin_index(t: torch.Tensor, bins: int) -> torch.Tensor:
    """k(t) = min(⌊K t⌋, K − 1) for t in [0, 1], shape of t, int64."""
    return (t.float() * bins).long().clamp_(0, bins - 1)


class WeightByTime:
    """Running sums S_k and counts N_k of the weights per t-bin, kept on the training device.

    ``add`` is sync-free (an ``index_add_``), so it can run every step.
    """

    def __init__(self, bins: int = DEFAULT_BINS, device: torch.device | str = "cpu") -> None:
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        self.bins = bins
        self.sums = torch.zeros(bins, dtype=torch.float64, device=device)
        self.counts = torch.zeros(bins, dtype=torch.float64, device=device)

    def add(self, t: torch.Tensor, w: torch.Tensor) -> None:
        k = bin_index(t, self.bins)
        self.sums.index_add_(0, k, w.detach().double())
        self.counts.index_add_(0, k, torch.ones_like(k, dtype=torch.float64))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"sums": self.sums.clone(), "counts": self.counts.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.sums.copy_(state["sums"])
        self.counts.copy_(state["counts"])

    def table(self) -> TimeWeightTable:
        return table_from_sums(self.sums.cpu().tolist(), self.counts.cpu().tolist())


@dataclass(frozen=True)
class TimeWeightTable:
    """W_k per t-bin (unit mean over bins), with the counts N_k it was estimated from."""

    weights: tuple[float, ...]
    counts: tuple[float, ...]

    @property
    def bins(self) -> int:
        return len(self.weights)

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, {"bins": self.bins, "weights": list(self.weights), "counts": list(self.counts),
                          "edges": [k / self.bins for k in range(self.bins + 1)]})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TimeWeightTable:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
            weights, counts = tuple(float(w) for w in raw["weights"]), tuple(float(c) for c in raw["counts"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not a time-weight table ({exc})") from exc
        if not weights or len(weights) != len(counts) or min(weights) <= 0:
            raise DataError(f"{path}: a time-weight table needs equal-length positive weights and counts")
        return cls(weights, counts)

    def as_tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.tensor(self.weights, dtype=torch.float32, device=device)


def table_from_sums(sums: list[float], counts: list[float]) -> TimeWeightTable:
    """W_k = (S_k/N_k) normalised to unit mean over bins; an empty bin takes its nearest filled bin's mean."""
    if len(sums) != len(counts) or not sums:
        raise ValueError("sums and counts must be non-empty and of equal length")
    filled = [k for k, n in enumerate(counts) if n > 0]
    if not filled:
        raise ValueError("no weights were accumulated (all bins are empty)")
    nearest = [min(filled, key=lambda j: (abs(j - k), j)) for k in range(len(sums))]
    means = [sums[j] / counts[j] for j in nearest]
    scale = sum(means) / len(means)
    return TimeWeightTable(tuple(m / scale for m in means), tuple(float(n) for n in counts))


def time_weights(t: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """w_i = W_{k(t_i)} / ((1/B) Σ_j W_{k(t_j)}): the table's weights at t, with unit batch mean, (B,)."""
    w = table.to(t.device)[bin_index(t, len(table))]
    return w / w.mean()
