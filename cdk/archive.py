"""The deployable handler archive: handlers/ plus manifests/, zipped byte-for-byte reproducibly.

The operator CLI lives in cli/, outside handlers/, so nothing has to be filtered out of it.

The object name carries a hash of the archive's contents, so Terraform replaces the
object, and Cloud Functions rebuilds, exactly when handler code or a manifest changed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REQUIRED_AT_ROOT = ("main.py", "requirements.txt")
MANIFESTS_PREFIX = "manifests/"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold; any fixed value would do
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class HandlerArchive:
    path: Path
    digest: str  # sha256 over entry names and contents, independent of zlib's output
    entries: tuple[str, ...]

    @property
    def object_name(self) -> str:
        return self.path.name


def _wanted(relative: Path) -> bool:
    parts = relative.parts
    if any(part.startswith(".") or part in _SKIPPED_DIRS or part.endswith(".egg-info") for part in parts):
        return False
    return not relative.name.endswith(_SKIPPED_SUFFIXES)


def _files(root: Path) -> list[tuple[str, Path]]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if _wanted(Path(d))]
        for filename in filenames:
            path = Path(dirpath, filename)
            relative = path.relative_to(root)
            if _wanted(relative):
                found.append((relative.as_posix(), path))
    return found


def archive_entries(handlers_dir: Path, manifests_dir: Path) -> list[tuple[str, Path]]:
    """(name in the archive, source file), sorted by name."""
    entries = [
        (name, path)
        for name, path in _files(handlers_dir)
        # The top-level manifests/ is the one source; a stray handlers/manifests/ must not shadow it.
        if not name.startswith(MANIFESTS_PREFIX)
    ]
    missing = [name for name in REQUIRED_AT_ROOT if name not in {entry for entry, _ in entries}]
    if missing:
        raise FileNotFoundError(f"{handlers_dir} lacks {', '.join(missing)}: Cloud Functions needs them at the archive root")
    if manifests_dir.is_dir():
        entries += [(MANIFESTS_PREFIX + name, path) for name, path in _files(manifests_dir)]
    return sorted(entries)


def build_archive(handlers_dir: Path, manifests_dir: Path, out_dir: Path) -> HandlerArchive:
    """Zip the runtime files into `out_dir/handlers-<hash>.zip` with fixed timestamps and modes."""
    entries = archive_entries(handlers_dir, manifests_dir)
    contents = [(name, path.read_bytes()) for name, path in entries]
    digest = hashlib.sha256()
    for name, data in contents:
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"handlers-{digest.hexdigest()[:16]}.zip"
    # Written aside and renamed, so a reader never sees half an archive under the final name.
    with (
        tempfile.NamedTemporaryFile(dir=out_dir, suffix=".zip.tmp", delete=False) as handle,
        zipfile.ZipFile(handle, "w") as zipped,
    ):
        for name, data in contents:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16  # regular file, rw-r--r--
            info.create_system = 3  # Unix, so the mode above is honoured
            zipped.writestr(info, data, compresslevel=9)
    Path(handle.name).replace(target)
    return HandlerArchive(path=target, digest=digest.hexdigest(), entries=tuple(name for name, _ in contents))
