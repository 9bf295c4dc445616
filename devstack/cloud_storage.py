"""Cloud Storage for the local stack: the `gcp-storage-emulator` process, and the few JSON API calls the stack makes.

Load jobs read their source files from it and extract jobs write theirs to it, as BigQuery does
with Cloud Storage; `baton upload` and `baton dev --seed` put a local folder into a bucket.
The client speaks the public JSON API over HTTP (what google-cloud-storage speaks), so it works
against the emulator and, with a token, against Cloud Storage itself.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import requests

from devstack.processes import free_port, stopped_on_error

if TYPE_CHECKING:
    from devstack.processes import ManagedProcess, ProcessSupervisor

__all__ = ["StorageClient", "StorageEmulator", "StorageError", "parse_gcs_uri", "upload_folder"]

STORAGE_HOST_VARIABLE = "STORAGE_EMULATOR_HOST"  # what google-cloud-storage reads; the local stack hands it on
_GCS_URI = re.compile(r"^gs://(?P<bucket>[a-z0-9][a-z0-9._-]{1,220}[a-z0-9])(?:/(?P<name>.*))?$")


class StorageError(RuntimeError):
    """A Cloud Storage call failed; the message says which object and why."""


def parse_gcs_uri(uri: str) -> tuple[str, str]:
    """(bucket, object name or prefix) of a gs:// URI."""
    match = _GCS_URI.match(uri)
    if not match:
        raise StorageError(f"'{uri}' is not a Cloud Storage URI like gs://bucket/path")
    return match["bucket"], match["name"] or ""


@dataclass(frozen=True)
class StorageEmulator:
    """A running `gcp-storage-emulator` (PyPI), on a free port, its objects under the supervisor's work dir."""

    process: ManagedProcess
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls, supervisor: ProcessSupervisor, *, port: int | None = None, name: str = "storage-emulator", timeout: float = 30.0
    ) -> StorageEmulator:
        port = port or free_port()
        data_dir = supervisor.work_dir / f"{name}-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "gcp_storage_emulator", "-d", str(data_dir), "start", "--host", "127.0.0.1"]
        process = supervisor.start(name, [*argv, "--port", str(port), "--quiet"])
        with stopped_on_error(process):
            process.wait_for_http(f"http://127.0.0.1:{port}/", expect_body="OK", timeout=timeout)
        return cls(process=process, port=port)

    def env(self) -> dict[str, str]:
        """What a Cloud Storage client (google-cloud-storage, or `StorageClient.from_env`) needs to use this emulator."""
        return {STORAGE_HOST_VARIABLE: self.endpoint}

    def client(self) -> StorageClient:
        return StorageClient(self.endpoint)

    def stop(self) -> None:
        self.process.stop()


class StorageClient:
    """Buckets and objects over the JSON API: create a bucket, upload, download, list, expand a `*` URI."""

    def __init__(self, endpoint: str, token: str | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StorageClient | None:
        host = env.get(STORAGE_HOST_VARIABLE)
        if not host:
            return None
        return cls(host if host.startswith("http") else f"http://{host}")

    def _check(self, response: requests.Response, what: str) -> requests.Response:
        if response.status_code >= 400:
            raise StorageError(f"{what}: {response.status_code} {response.text[:300]}")
        return response

    def ensure_bucket(self, bucket: str) -> None:
        response = self.session.post(f"{self.endpoint}/storage/v1/b", json={"name": bucket}, timeout=30)
        if response.status_code != 409:  # already there
            self._check(response, f"create bucket {bucket}")

    def upload(self, bucket: str, name: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        url = f"{self.endpoint}/upload/storage/v1/b/{bucket}/o"
        response = self.session.post(
            url, params={"uploadType": "media", "name": name}, data=data, headers={"Content-Type": content_type}, timeout=60
        )
        self._check(response, f"upload gs://{bucket}/{name}")

    def download(self, bucket: str, name: str) -> bytes:
        url = f"{self.endpoint}/download/storage/v1/b/{bucket}/o/{quote(name, safe='')}"
        response = self.session.get(url, params={"alt": "media"}, timeout=60)
        if response.status_code == 404:
            raise FileNotFoundError(f"gs://{bucket}/{name}")
        return self._check(response, f"download gs://{bucket}/{name}").content

    def list_objects(self, bucket: str, prefix: str = "") -> list[str]:
        names: list[str] = []
        token: str | None = None
        while True:
            params = {"prefix": prefix, **({"pageToken": token} if token else {})}
            response = self.session.get(f"{self.endpoint}/storage/v1/b/{bucket}/o", params=params, timeout=30)
            if response.status_code == 404:
                raise FileNotFoundError(f"gs://{bucket} (no such bucket)")
            body = self._check(response, f"list gs://{bucket}/{prefix}").json()
            names += [str(item["name"]) for item in body.get("items", [])]
            token = body.get("nextPageToken")
            if not token:
                return sorted(names)

    def expand(self, uri: str) -> list[tuple[str, str]]:
        """(bucket, name) of every object a URI names: itself, or with a `*`, each match (BigQuery's wildcard)."""
        bucket, name = parse_gcs_uri(uri)
        if "*" not in name:
            return [(bucket, name)]
        prefix = name.split("*", 1)[0]
        return [(bucket, found) for found in self.list_objects(bucket, prefix) if fnmatch.fnmatchcase(found, name)]


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts):
            yield path


def upload_folder(client: StorageClient, folder: Path, destination: str) -> list[str]:
    """Every file under `folder` (hidden ones skipped) to `gs://bucket/prefix/<relative path>`; the URIs written."""
    if not folder.is_dir():
        raise StorageError(f"{folder} is not a folder")
    bucket, prefix = parse_gcs_uri(destination)
    prefix = prefix.strip("/")
    client.ensure_bucket(bucket)
    written = []
    for path in _files(folder):
        name = "/".join(part for part in (prefix, path.relative_to(folder).as_posix()) if part)
        client.upload(bucket, name, path.read_bytes(), "text/csv" if path.suffix == ".csv" else "application/octet-stream")
        written.append(f"gs://{bucket}/{name}")
    return written
