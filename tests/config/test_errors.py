"""Tests for agm/config/errors.py: one-line messages of exceptions."""

from __future__ import annotations

from agm.config.errors import exception_summary


def test_exception_summary_folds_whitespace_and_names_the_type():
    assert exception_summary(ValueError("bad\n  value\there")) == "ValueError: bad value here"
    assert exception_summary(KeyError()) == "KeyError"


def test_exception_summary_first_line_and_limit():
    exc = RuntimeError("InvalidCxxCompiler: no compiler\nTraceback (most recent call last): ...")
    assert exception_summary(exc, first_line=True) == "RuntimeError: InvalidCxxCompiler: no compiler"
    assert exception_summary(exc, limit=7, first_line=True) == "RuntimeError: Invalid"
