"""Tests for agm/validate.py: one-line messages of exceptions."""

from __future__ import annotations

from agm.validate import one_line


def test_one_line_folds_whitespace_and_names_the_type():
    assert one_line(ValueError("bad\n  value\there")) == "ValueError: bad value here"
    assert one_line(KeyError()) == "KeyError"


def test_one_line_first_line_and_limit():
    exc = RuntimeError("InvalidCxxCompiler: no compiler\nTraceback (most recent call last): ...")
    assert one_line(exc, first_line=True) == "RuntimeError: InvalidCxxCompiler: no compiler"
    assert one_line(exc, limit=7, first_line=True) == "RuntimeError: Invalid"
