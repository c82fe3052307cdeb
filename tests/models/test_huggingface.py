"""Hugging Face model folders: the task read from the config, and one clear error for a folder that is not
one."""

import json

import pytest

pytest.importorskip("transformers")

from relprop.models.huggingface import load_text_model  # noqa: E402


def test_classifier_and_generator_folders(tiny_bert_folder, tiny_gpt2_folder):
    classifier = load_text_model(tiny_bert_folder)
    assert classifier.task == "classification" and classifier.class_names == ["no", "yes"]
    assert not classifier.model.training and classifier.tokenizer.is_fast
    generator = load_text_model(tiny_gpt2_folder)
    assert generator.task == "generation" and generator.class_names is None


def test_folders_that_are_not_models(tmp_path):
    with pytest.raises(OSError, match="no such model folder"):
        load_text_model(tmp_path / "missing")
    with pytest.raises(OSError, match="has no config.json"):
        load_text_model(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(OSError, match="not valid JSON"):
        load_text_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(ValueError, match="neither a sequence classifier"):
        load_text_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    with pytest.raises(OSError, match="cannot load the model or its tokenizer"):
        load_text_model(tmp_path)
