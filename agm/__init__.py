"""agm — Action-Inspired Generative Models, the library behind the DVC pipeline (equations: docs/spec.md).

This package file imports nothing, so each stage runs only the modules it imports (and its DVC deps,
derived from that import closure by ``agm.provenance``, stay exact). Import from the modules:

- ``agm.bridge`` [§1]:   ``sample_bridge(x0, x1, t, eps, sigma_max) -> BridgeSample(x_t, target, t, schedule)``
- ``agm.nets`` [§5]:     ``DriftUNet`` f_θ(x, t), ``Potential`` V_φ(x)
- ``agm.losses`` [§2-4]: ``potential_loss``, ``importance_weights(v, lam, clamp)``, ``drift_loss`` (per sample)
- ``agm.ema``:           ``EMA(model, decay).update(model)``
- ``agm.sampler`` [§6]:  ``euler_maruyama(f, shape, nfe, g, generator)``, ``sample_batches(...)``
- ``agm.train`` [§4]:    ``AGMTrainer`` (one step in the paper's order), ``train(...)`` (the loop, resumable)
- ``agm.metrics``:       ``frechet_distance``, ``precision_recall``
"""
