"""SpRAy reports: analyse one class of an attribution store and show its strategies in a browser.

>>> from relprop import store, report
>>> with store.open("run.h5") as run:
...     analysis = report.analyse_class(run, class_index=8)
>>> report.write_report(analysis, "report/index.html")            # self-contained, opens from file://
>>> report.write_virelay_analysis(analysis, "report/analysis.h5")  # for ViRelAy
"""

from relprop.report.analysis import ClassAnalysis, analyse_class, class_rows
from relprop.report.html import write_report
from relprop.report.virelay import write_virelay_analysis

__all__ = ["ClassAnalysis", "analyse_class", "class_rows", "write_report", "write_virelay_analysis"]
