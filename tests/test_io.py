"""Atomic writes keep the old artifact when writing the new one fails."""

import pytest

from safeserve_utils.io import atomic_path, atomic_write_json, atomic_write_text


def test_failed_write_leaves_old_file(tmp_path):
    target = atomic_write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_directory_replace(tmp_path):
    target = tmp_path / "adapter"
    for version in ("v1", "v2"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "weights").write_text(version)
    assert (target / "weights").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def test_json(tmp_path):
    path = atomic_write_json(tmp_path / "sub" / "m.json", {"safe": 0.5, "ü": 1})
    assert path.read_text().startswith("{") and "ü" in path.read_text()
