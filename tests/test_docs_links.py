"""The README's and docs' in-repository links resolve: every linked file exists and every ``#anchor`` names a
heading (GitHub's slug: lower case, punctuation dropped, spaces to hyphens) or an ``<a id>`` of the target."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@lru_cache(maxsize=None)
def prose(path: Path) -> str:
    """The Markdown file's text without its fenced code blocks (no headings or links are read inside them)."""
    return re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)


@lru_cache(maxsize=None)
def anchors(path: Path) -> set[str]:
    text = prose(path)
    found = {slug(h) for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}
    return found | set(re.findall(r'<a id="([^"]+)"', text))


def test_slug_follows_github():
    assert slug("Decision labels at sampled frames (`counterfactual/frame_labels.py`)") == \
        "decision-labels-at-sampled-frames-counterfactualframe_labelspy"
    assert slug("The MLP table on fresh banks: 6 seeds, 96 held-out scenes (issue #30's MLP done-when)") == \
        "the-mlp-table-on-fresh-banks-6-seeds-96-held-out-scenes-issue-30s-mlp-done-when"


def test_readme_and_docs_links_resolve():
    bad = []
    for doc in DOCS:
        for target, anchor in LINK.findall(prose(doc)):
            if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked here
                continue
            path = (doc.parent / target).resolve() if target else doc
            if not path.exists():
                bad.append(f"{doc.relative_to(ROOT)}: missing file {target}")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                bad.append(f"{doc.relative_to(ROOT)}: no anchor #{anchor} in {path.relative_to(ROOT)}")
    assert not bad, "\n".join(bad)
