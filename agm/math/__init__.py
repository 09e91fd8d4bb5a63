"""Layer 2, the paper's equations (docs/spec.md §1–§8): the bridge, the losses, the networks (``nets``), the EMA,
the Euler–Maruyama solver, the per-t weight tables (``time_bins``), Action Matching, the potential's saliency and
the sample-quality metrics (``metrics``). Tensors in, tensors out; no processes, no files of runs."""
