"""`baton upload DIR gs://BUCKET/PREFIX`: seed the local stack's Cloud Storage with a folder of files.

Load jobs read Cloud Storage; locally that is the `baton dev` stack's emulator. Against Google
Cloud itself, `gcloud storage cp -r DIR gs://BUCKET/PREFIX` does the same, so this command
refuses to run without a local stack rather than guess credentials and create buckets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from baton_cli import root


@root.app.command("upload")
def upload(
    folder: Annotated[Path, typer.Argument(help="Local folder; every file under it (hidden ones skipped).", file_okay=False)],
    destination: Annotated[str, typer.Argument(help="gs://BUCKET/PREFIX: files land at PREFIX/<path under FOLDER>.")],
) -> None:
    """Upload a folder into the local stack's Cloud Storage (the bucket is created if missing)."""
    from devstack.cloud_storage import STORAGE_HOST_VARIABLE, StorageClient, StorageError, upload_folder

    client = StorageClient.from_env(os.environ)
    if client is None:
        root.fail(
            f"no local Cloud Storage ({STORAGE_HOST_VARIABLE} is unset): start `baton dev` in this checkout; "
            f"for Google Cloud itself use `gcloud storage cp -r {folder} {destination}`"
        )
    try:
        written = upload_folder(client, folder, destination)
    except StorageError as exc:
        root.fail(str(exc))
    for uri in written:
        typer.echo(uri)
    typer.echo(f"uploaded {len(written)} file(s) from {folder} to {destination}", err=True)
