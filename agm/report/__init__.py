"""The reproduction report: figures (paper Figs. 3-5), Table 3, the controls' verdicts and the report page.

Three rooms, one way down (page -> files, never page -> models):

- analysis, numbers only: :mod:`~agm.report.stats` (intervals, power), :mod:`~agm.report.analysis` (curves,
  crossings), :mod:`~agm.report.controls` (verdicts), :mod:`~agm.report.convergence`, :mod:`~agm.report.tables`
  (Table 3 as data and its Markdown/HTML), :mod:`~agm.report.table2`, :mod:`~agm.report.studies`;
- figures and costs, each written as a file with its data by its own stage: :mod:`~agm.report.run_figures`
  (figures stage; drawing in :mod:`~agm.report.figures`), :mod:`~agm.report.saliency` (saliency stage, Fig. 5),
  :mod:`~agm.report.flops` (cost stage);
- the page, from files only and without torch: :mod:`~agm.report.outputs` (what the report reads),
  :mod:`~agm.report.sections` (one function per section), :mod:`~agm.report.cost` (the cost table),
  :mod:`~agm.report.build` and :mod:`~agm.report.page` (assembly, Markdown and HTML).

:mod:`agm.report.sweep` summarises the λ sweep (not part of the pipeline's report). Every file goes through
:mod:`agm.io.atomic`.
"""
