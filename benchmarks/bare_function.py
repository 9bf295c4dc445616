"""The cold-start baseline: a functions-framework function that imports nothing more and answers at once."""

from __future__ import annotations

from typing import Any

import functions_framework


@functions_framework.http
def ping(request: Any) -> tuple[dict[str, bool], int]:
    return {"ok": True}, 200
