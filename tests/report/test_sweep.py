"""Tests for agm/report/sweep.py on records shaped like `dvc exp show --json` (DVC 3)."""

from __future__ import annotations

import pytest

from agm.report.sweep import summarize, sweep_rows


def _rev(rev: str, lam: float, fds: dict[int, float], experiments: list | None = None) -> dict:
    metrics = {f"metrics/agm/s{s}.json": {"data": {"fd_digits": fd, "precision": 0.5, "recall": 0.9,
                                                   "feature_space": "digits"}} for s, fd in fds.items()}
    metrics["metrics/baseline/s0.json"] = {"data": {"fd_digits": 99.0, "precision": 0.1, "recall": 0.1,
                                                    "feature_space": "digits"}}
    return {"rev": rev, "name": None, "error": None, "experiments": experiments,
            "data": {"params": {"params.yaml": {"data": {"lambda": lam, "seeds": list(fds)}}}, "metrics": metrics}}


def test_rows_are_deduplicated_and_summarised():
    exp = {"revs": [_rev("e1", 0.0, {0: 10.0, 1: 12.0})], "name": "exp-a", "executor": None}
    show = [_rev("workspace", 0.0, {0: 10.0, 1: 12.0}), _rev("abc", 0.1, {0: 8.0, 1: 9.0}, [exp])]
    rows = sweep_rows(show)
    assert rows[["lambda", "seed", "fd_digits"]].values.tolist() == [[0.0, 0, 10.0], [0.0, 1, 12.0],
                                                                     [0.1, 0, 8.0], [0.1, 1, 9.0]]
    summary = summarize(rows).set_index("lambda")
    assert summary.loc[0.0, "fd_digits"] == pytest.approx(11.0)
    assert summary.loc[0.0, "fd_digits_ci"] == pytest.approx(12.706204736174707)  # t_{.975,1} · √2 / √2
    assert summary.loc[0.1, "seeds"] == 2


def test_no_agm_metrics_is_an_error():
    with pytest.raises(ValueError, match="lambda"):
        sweep_rows([{"rev": "workspace", "data": {"params": {}, "metrics": {}}}])
