"""The ViRelAy export: the datasets ViRelAy's AttributionDatabase reads, with the store's values."""

import h5py
import numpy as np

from relprop import store


def test_export_has_virelays_attribution_layout(tmp_path, dataset, model):
    shards = [
        store.attribute_dataset(dataset, model, tmp_path / f"p{i}.h5", shard=(i, 2), progress=False)
        for i in range(2)
    ]
    merged = store.merge(tmp_path / "all.h5", shards)
    path = store.export_virelay(merged, tmp_path / "all-lrp.attribution.h5")
    with h5py.File(path, "r") as file, store.open(merged) as run:
        assert set(file) == {"attribution", "label", "prediction", "index"}
        assert file["attribution"].dtype == np.float32 and file["prediction"].dtype == np.float32
        assert file["index"].dtype == np.uint32
        assert file["label"][0].dtype != np.bool_  # single-label, as ViRelAy tests it
        np.testing.assert_array_equal(file["attribution"][:], run.attribution[:].astype(np.float32))
        np.testing.assert_array_equal(file["prediction"][:], run.output[:])
        np.testing.assert_array_equal(file["label"][:], dataset.y)
        # ViRelAy's lookup of sample 7: the row where index == 7
        row = np.where(file["index"][:] == 7)[0][0]
        np.testing.assert_array_equal(file["attribution"][row], run.attribution[7].astype(np.float32))
        assert file.attrs["method"] == "lrp"
