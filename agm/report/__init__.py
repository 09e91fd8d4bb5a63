"""Rendering of the reproduction report: figures (paper Figs. 3-5), Table 3, the report page.

Pure functions over arrays, DataFrames and dicts; every file goes through :mod:`agm.io`.
"""
