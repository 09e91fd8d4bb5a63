"""agm — Action-Inspired Generative Models, the library behind the DVC pipeline.

The public API on one screen (spec sections in brackets, ../shared/spec/agm.md):

- bridge [§1]:   ``sample_bridge(x0, x1, t, eps, sigma_max) -> BridgeSample(x_t, target, t, schedule)``
- nets [§5]:     ``DriftUNet`` f_θ(x, t), ``Potential`` V_φ(x); ``paper_unet()``, ``paper_potential()``
- losses [§2-4]: ``potential_loss``, ``importance_weights(v, lam, clamp)``, ``drift_loss`` (per sample)
- ema:           ``EMA(model, decay).update(model)``
- sampler [§6]:  ``euler_maruyama(f, shape, nfe, g, generator)``, ``sample_batches(...)``
- train [§4]:    ``AGMTrainer`` (one step in the paper's order), ``train(...)`` (the loop, resumable)
- metrics:       ``agm.metrics.frechet_distance``, ``agm.metrics.precision_recall``
"""

from agm.bridge import BridgeSample, sample_bridge, schedule_values
from agm.ema import EMA
from agm.losses import drift_loss, importance_weights, potential_loss
from agm.nets import DriftUNet, Potential, paper_potential, paper_unet
from agm.sampler import euler_maruyama, sample_batches
from agm.train import AGMTrainer, NonFiniteLossError, StepStats, TrainResult, train

__all__ = [
    "AGMTrainer", "BridgeSample", "DriftUNet", "EMA", "NonFiniteLossError", "Potential", "StepStats",
    "TrainResult", "drift_loss", "euler_maruyama", "importance_weights", "paper_potential", "paper_unet",
    "potential_loss", "sample_batches", "sample_bridge", "schedule_values", "train",
]
