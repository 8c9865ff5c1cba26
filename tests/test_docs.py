"""Every ```python block in README.md and docs/ runs as written.

Blocks of one page run in order in one namespace, as a reader would paste
them, inside a temporary working directory so that files they write vanish.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page):
    return BLOCK.findall(page.read_text())


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_page_code_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # headless plotting for pages that draw figures
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # run as a saved script runs: a block's `if __name__ == "__main__":` part runs too
    namespace = {"__name__": "__main__"}
    for number, block in enumerate(python_blocks(page), start=1):
        try:
            exec(compile(block, f"{page.name}[block {number}]", "exec"), namespace)
        except Exception as error:  # pragma: no cover - the message is the point
            raise AssertionError(f"{page.relative_to(ROOT)} block {number} failed: {error!r}\n{block}") from error


def test_docs_have_code_to_run():
    assert any(python_blocks(p) for p in PAGES), "no ```python block found in README.md or docs/"


def test_docstrings_cite_the_conventions_page_of_this_repository():
    # the conventions users need live in docs/conventions.md; every "§N" cited there must exist
    sections = set(re.findall(r"^## (\d+)\. ", (ROOT / "docs" / "conventions.md").read_text(), re.M))
    assert len(sections) >= 6
    cited, outside = set(), []
    for path in sorted((ROOT / "strfsolver").rglob("*.py")):
        text = path.read_text()
        if "CONVENTIONS" in text:
            outside.append(str(path.relative_to(ROOT)))
        cited |= {(str(path.relative_to(ROOT)), n) for n in re.findall(r"docs/conventions\.md §(\d+)", text)}
    assert not outside, f"modules citing a CONVENTIONS file that is not in this repository: {outside}"
    assert cited and not {n for _, n in cited} - sections, sorted(c for c in cited if c[1] not in sections)
