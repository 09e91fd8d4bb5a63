"""Thin DVC stage entry points: parse paths, validate params, call `agm`, write outputs.

Run each as ``python -m stages.NAME``; every path comes from dvc.yaml. Each ends with ``run(main)``: a user error
(agm.config.errors) prints one line and exits with code 2.
"""

from agm.config.errors import run_main as run

__all__ = ["run"]
