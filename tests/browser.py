"""Headless Chromium (Debian's `chromium` package) for tests that check what a page shows."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests may run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
)
TIMEOUT_S = 120

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is missing: `apt-get install chromium` (make test installs it where it can)",
)


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed


def dump_dom(page: Path, profile: Path) -> str:
    """The DOM Chromium built from the page, serialized after loading it."""
    return _chromium(profile, "--dump-dom", page.resolve().as_uri()).stdout


def screenshot(page: Path, output: Path, profile: Path, width: int = 1400, height: int = 1000) -> Path:
    _chromium(profile, f"--screenshot={output}", f"--window-size={width},{height}", page.resolve().as_uri())
    assert output.exists(), f"chromium wrote no {output}"
    return output


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parents: tuple[str, ...]  # ids of the enclosing elements that have one
    text: list[str] = field(default_factory=list)


class DomIndex(HTMLParser):
    """Every element with its attributes, the ids around it and its own text: enough to ask what a page shows."""

    VOID = frozenset({"meta", "link", "br", "img", "input", "hr", "source", "wbr", "col", "area", "base", "embed"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        ids = tuple(e.attrs["id"] for e in self._open if "id" in e.attrs)
        element = Element(tag, {name: value or "" for name, value in attrs}, ids)
        self.elements.append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1].text.append(data)

    def find(self, tag: str | None = None, inside: str | None = None, **attrs: str) -> list[Element]:
        """Elements by tag, by attribute values (`data_job` means `data-job`, `class_` means `class`) and by an enclosing id."""
        wanted = {name.rstrip("_").replace("_", "-"): value for name, value in attrs.items()}
        return [
            e
            for e in self.elements
            if (tag is None or e.tag == tag)
            and (inside is None or inside in e.parents)
            and all(e.attrs.get(name) == value for name, value in wanted.items())
        ]
