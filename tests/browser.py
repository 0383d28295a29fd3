"""Open a page in Debian's headless chromium as a person would: the DOM after its scripts ran, and a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest


def chromium() -> str:
    """The browser's path, or the test is skipped saying why."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (make test installs Debian's package where it can)")
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                 f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--hide-scrollbars"]
        return subprocess.run([chromium(), *flags, *args], capture_output=True, text=True, timeout=120)


def rendered(page: Path) -> dict[str, int]:
    """The numbers the page's script records once loaded: images, images loaded, table rows."""
    done = _run(["--dump-dom", page.resolve().as_uri()])
    body = re.search(r"<body([^>]*)>", done.stdout)
    assert body, done.stderr[-1000:]
    return {key: int(value) for key, value in re.findall(r'data-(\w+)="(\d+)"', body.group(1))}


def screenshot(page: Path, target: Path, size: str = "1200,1400") -> Path:
    """A PNG of the page as the browser paints it."""
    _run([f"--screenshot={target}", f"--window-size={size}", page.resolve().as_uri()])
    assert target.is_file(), "chromium wrote no screenshot"
    return target
