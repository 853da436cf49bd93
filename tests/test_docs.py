"""The documentation stays true: every image and relative link in README.md
and docs/ points at a file (and heading) that exists, and the Python API
page's examples run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """The heading anchors of a Markdown page, as GitHub makes them."""
    anchors = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            anchors.add(title.replace(" ", "-"))
    return anchors


def _links(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code is not links
    return LINK.findall(text)


def _broken(page: Path) -> list[str]:
    """Relative links and images of `page` whose file or heading is missing."""
    broken = []
    for target in _links(page):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no such heading")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_image_exists(page: Path):
    broken = _broken(page)
    assert not broken, broken


def test_the_link_check_finds_a_broken_link(tmp_path: Path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("## A heading\n")
    page.write_text(
        "# Title\n\n[ok](#title) [gone](missing.md) ![x](x.png)\n"
        "[fine](other.md#a-heading) [wrong](other.md#nope) [web](https://x.org)\n"
        "```\n[in code](nowhere.md)\n```\n"
    )
    assert _broken(page) == [
        "missing.md: no such file",
        "x.png: no such file",
        "other.md#nope: no such heading",
    ]


def _python_blocks(page: Path) -> str:
    text = page.read_text(encoding="utf-8")
    return "\n".join(re.findall(r"```python\n(.*?)```", text, flags=re.S))


@pytest.mark.slow
def test_the_python_examples_run_as_written(tmp_path: Path):
    """docs/python-api.md's example (it trains on the sample corpus), then the
    README's and docs/model-file.md's, which read the model it wrote: run as
    a user would paste them, so their names and signatures stay true."""
    shutil.copytree(ROOT / "corpora" / "saltmarsh", tmp_path / "corpora" / "saltmarsh")
    (tmp_path / "models").mkdir()
    for page in (ROOT / "docs" / "python-api.md", ROOT / "README.md",
                 ROOT / "docs" / "model-file.md"):  # fmt: skip
        code = _python_blocks(page)
        assert code, f"{page.name} has no Python example"
        ran = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert ran.returncode == 0, f"{page.name}: {ran.stderr[-2000:]}"
        assert ran.stdout.strip(), page.name
