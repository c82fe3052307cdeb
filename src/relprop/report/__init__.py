"""SpRAy reports: analyse one class of an attribution store and show its strategies in a browser.

>>> from relprop import store, report
>>> with store.open("run.h5") as run:
...     analysis = report.analyse_class(run, class_index=8)
>>> report.write_report(analysis, "report/index.html")            # self-contained, opens from file://
>>> atlas = report.concept_atlas(LRP(model), dataset, "relmax.h5", 8, samples)  # CRP: concepts of class 8
>>> report.write_atlas(atlas, "report/concepts.html")
>>> report.write_virelay_analysis(analysis, "report/analysis.h5")  # for ViRelAy
>>> report.write_virelay_project("run.h5", [analysis], "virelay", dataset)  # virelay virelay/project.yaml
"""

from relprop.report.analysis import ClassAnalysis, analyse_class, analyse_stored_class, class_rows
from relprop.report.atlas import ConceptAtlas, concept_atlas, store_atlas, write_atlas
from relprop.report.html import write_report
from relprop.report.virelay import CLUSTER_NUMBERING, write_virelay_analysis, write_virelay_project

__all__ = [
    "CLUSTER_NUMBERING",
    "ClassAnalysis",
    "ConceptAtlas",
    "analyse_class",
    "analyse_stored_class",
    "class_rows",
    "concept_atlas",
    "store_atlas",
    "write_atlas",
    "write_report",
    "write_virelay_analysis",
    "write_virelay_project",
]
