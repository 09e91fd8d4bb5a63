"""Shared set-up for the metrics tests."""

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def single_torch_thread():
    """Run each metrics test module on one intra-op thread, then restore the setting.

    On a shared 2-core machine, two OpenMP threads competing with other processes wait on each
    other at every parallel op: FeatureNet training measured 12 s on one thread and ~120 s on two
    under that load (5.5 s on two when the machine is idle).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
