"""Tools run by hand from the repository root as ``python -m tools.NAME``: not DVC stages (their numbers belong
to a machine or to a set of experiments, not to params.yaml). They import ``agm``, never ``stages``."""
