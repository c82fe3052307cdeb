"""SpRAy reports: analyse one class of an attribution store and show its strategies in a browser.

>>> from relprop import store, report
>>> with store.open("run.h5") as run:
...     analysis = report.analyse_class(run, class_index=8)
>>> report.write_report(analysis, "report/index.html")            # self-contained, opens from file://
>>> report.write_virelay_analysis(analysis, "report/analysis.h5")  # for ViRelAy
>>> report.write_virelay_project("run.h5", [analysis], "virelay", dataset)  # virelay virelay/project.yaml
"""

from relprop.report.analysis import ClassAnalysis, analyse_class, analyse_stored_class, class_rows
from relprop.report.html import write_report
from relprop.report.virelay import CLUSTER_NUMBERING, write_virelay_analysis, write_virelay_project

__all__ = [
    "CLUSTER_NUMBERING",
    "ClassAnalysis",
    "analyse_class",
    "analyse_stored_class",
    "class_rows",
    "write_report",
    "write_virelay_analysis",
    "write_virelay_project",
]
