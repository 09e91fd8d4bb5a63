"""agm — Action-Inspired Generative Models, the library behind the DVC pipeline (equations: docs/spec.md).

This package file imports nothing, so each stage runs only the modules it imports (and its DVC deps,
derived from that import closure by ``agm.io.provenance``, stay exact). Its packages are the layers, lowest
first; a module never imports one of a higher layer (tests/test_layers.py):

1. ``agm.config``   params.yaml → frozen dataclasses, their checks, the user errors; ``agm.io``: atomic
   writes, image sets, image grids, content hashes and import closures
2. ``agm.math``     the paper's equations: ``bridge`` [§1], ``losses`` [§2-4], ``nets`` [§5] (f_θ, V_φ), ``ema``,
   ``solver`` [§6] (Euler–Maruyama), ``time_bins`` (per-t weight tables), ``action_matching``, ``saliency``,
   ``metrics`` [§8] (Fréchet and kernel distances, precision/recall)
3. ``agm.training`` (its lower part) processes (``distributed``), training-state files (``checkpoints``), the
   state folder of a run identity (``run_state``)
4. ``agm.training`` (the rest) the weightings, the trainers (one step each), the loop, how a run executes
   (``execution``) and speed measurements (``throughput``, ``peak_flops``)
5. ``agm.models``   trained model files and the samples drawn from them
6. ``agm.variants`` the table of runnable variants (one row each); ``agm.report``: the report page
7. ``stages``       the DVC stages (outside this package), one ``agm`` call each
"""
