"""The reproduction report: figures (paper Figs. 3-5), Table 3, the controls' verdicts and the report page.

- :mod:`agm.report.build`: reads stage outputs and assembles the page (:func:`~agm.report.build.build_report`);
- :mod:`agm.report.sections`: one function per section of the page;
- :mod:`agm.report.analysis` and :mod:`agm.report.controls`: the numbers and verdicts, no drawing;
- :mod:`agm.report.figures`, :mod:`agm.report.tables`, :mod:`agm.report.page`: drawing and rendering;
- :mod:`agm.report.sweep`: the λ sweep (not part of the pipeline's report).

Every file goes through :mod:`agm.io.atomic`.
"""
