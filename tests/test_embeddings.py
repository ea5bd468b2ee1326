"""The embedding cache: each text is encoded once, and each shard on disk is read once per process."""

import numpy as np
import pytest

from safeserve_utils.evaluation import embeddings


class FakeEncoder:
    def __init__(self):
        self.seen = []

    def encode(self, texts, **_):
        self.seen += texts
        return np.array([[len(t), 1.0] + [0.0] * 382 for t in texts], dtype=np.float32)


@pytest.fixture
def fake(monkeypatch):
    encoder = FakeEncoder()
    monkeypatch.setattr(embeddings, "_encoder", lambda: encoder)
    monkeypatch.setattr(embeddings, "_loaded", {})
    return encoder


def test_texts_are_encoded_once_and_shards_read_once_per_process(fake, tmp_path, monkeypatch):
    first = embeddings.encode(["a", "bb"], store=tmp_path)
    assert fake.seen == ["a", "bb"] and len(list(tmp_path.glob("*.npz"))) == 1
    reads = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda path, *a, **k: reads.append(path) or real_load(path, *a, **k))

    monkeypatch.setattr(embeddings, "_loaded", {})  # a new process: the shard is read from disk
    assert np.array_equal(embeddings.encode(["bb", "a"], store=tmp_path), first[::-1])
    assert fake.seen == ["a", "bb"] and len(reads) == 1
    embeddings.encode(["a"], store=tmp_path)
    assert len(reads) == 1  # nothing new on disk: nothing read again

    embeddings.encode(["ccc"], store=tmp_path)  # this process's own new shard is not read back
    assert fake.seen == ["a", "bb", "ccc"] and len(reads) == 1

    other = tmp_path / "other"  # another process adds a shard: it is read, once
    fake_other = {"keys": np.array([embeddings.text_key("dddd")]), "vectors": np.ones((1, 384), np.float32)}
    np.savez(other, **fake_other)
    assert embeddings.encode(["dddd"], store=tmp_path)[0, 0] == 1.0
    assert fake.seen == ["a", "bb", "ccc"] and len(reads) == 2
