"""Read a ViRelAy project with ViRelAy's own classes and print what they return as JSON.

Run with the Python of an environment where ViRelAy is installed (``.virelay-venv``, see ``.ci/run``):
``python virelay_reader.py DIR/project.yaml``. It imports nothing from relprop, so that ViRelAy's pinned
dependencies never meet relprop's.
"""

import json
import sys

import numpy
from virelay.model import Project


def main(path: str) -> None:
    project = Project(path)
    try:
        samples = [project.get_sample(index) for index in range(len(project.dataset))]
        attributions = [project.get_attribution(index) for index in range(len(project.dataset))]
        methods = project.get_analysis_methods()
        analyses = {}
        for method in methods:
            clusterings = project.get_analysis_clustering_names(method)
            embeddings = project.get_analysis_embedding_names(method)
            for category in project.get_analysis_categories(method):
                for embedding in embeddings:
                    analysis = project.get_analysis(method, category.name, clusterings[0], embedding)
                    eigenvalues = analysis.eigenvalues
                    analyses[f"{method}/{category.name}/{embedding}"] = {
                        "name": category.human_readable_name,
                        "clustering_name": analysis.clustering_name,
                        "clustering": numpy.asarray(analysis.clustering).tolist(),
                        "embedding": numpy.asarray(analysis.embedding).tolist(),
                        "index": numpy.asarray(analysis.attribution_indices).tolist(),
                        "eigenvalues": None if eigenvalues is None else numpy.asarray(eigenvalues).tolist(),
                    }
        result = {
            "name": project.name,
            "attribution_strategy": project.attribution_strategy,
            "samples": [
                {"data": s.data.tolist(), "dtype": str(s.data.dtype), "labels": [x.index for x in s.labels]}
                for s in samples
            ],
            "attributions": [
                {
                    "index": a.index,
                    "data": numpy.asarray(a.data).tolist(),
                    "labels": [x.index for x in a.labels],
                    "prediction": numpy.asarray(a.prediction).tolist(),
                }
                for a in attributions
            ],
            "analyses": analyses,
        }
    finally:
        project.close()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
