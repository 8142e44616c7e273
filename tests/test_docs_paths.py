"""Every repository path that a doc, a comment or a docstring names must exist.

Docs and comments that point at files which moved or never existed send a newcomer (or an
operator at 3 a.m.) nowhere. This scans the README, docs/, deploy/, bench/RESULTS.md and the
source trees for tokens that look like paths inside this repository (they start with one of
its top-level folders) and checks each one. Paths outside the project's checkout (the
``shared/`` folder beside it exists for developers and CI only) must not be cited at all:
what the product or its tests need is copied into the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP = ("cpp", "python", "tests", "bench", "deploy", "docs", "scripts", ".ci")
SCANNED = ("README.md", "docs", "deploy", "bench", "cpp", "python", "tests", "scripts", "CMakeLists.txt",
           "pyproject.toml", ".ci")
SUFFIXES = {".md", ".py", ".pyi", ".cpp", ".hpp", ".c", ".h", ".txt", ".toml", ".yaml", ".yml", ".json", ""}
# A path token: a top-level folder, then path characters. Globs and placeholders
# (<name>, *, {a,b}) are checked up to the first such character.
PATH = re.compile(r"(?<![\w./-])(?:\./)?((?:%s)/[\w./<>*{},-]*)" % "|".join(re.escape(t) for t in TOP))
SHARED = re.compile(r"(?<![\w/.-])(?:\.\./)?shared/(?:data|PROTOCOL\.md|ARCHITECTURE\.md|STYLE\.md)")


def _files() -> list[Path]:
    out: list[Path] = []
    for name in SCANNED:
        p = ROOT / name
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out += [f for f in p.rglob("*") if f.is_file() and f.suffix in SUFFIXES
                    and "golden" not in f.parts and "data" not in f.parts[len(ROOT.parts):][:2]]
    return sorted(out)


def _concrete(token: str) -> str:
    """What a token names for sure: with a placeholder or glob (``bind_<name>.cpp``,
    ``cupti*``), the folder that holds it; else the token without trailing punctuation."""
    parts = re.split(r"[<>*{]", token, maxsplit=1)
    if len(parts) > 1:
        return parts[0].rpartition("/")[0]
    return token.rstrip(".,/:;)-")


def _cited(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return []
    hits = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for m in PATH.finditer(line):
            hits.append((lineno, m.group(1)))
    return hits


def test_every_cited_repository_path_exists() -> None:
    missing = []
    for f in _files():
        for lineno, token in _cited(f):
            concrete = _concrete(token)
            if not concrete or concrete in TOP:
                continue
            if not (ROOT / concrete).exists():
                missing.append(f"{f.relative_to(ROOT)}:{lineno}: {token}")
    assert not missing, "paths cited but absent:\n" + "\n".join(missing)


def test_nothing_cites_the_shared_folder_outside_the_project() -> None:
    cited = []
    for f in _files():
        if f == Path(__file__).resolve():
            continue
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            if SHARED.search(line):
                cited.append(f"{f.relative_to(ROOT)}:{lineno}: {line.strip()[:120]}")
    assert not cited, "cites ../shared (copy what is needed into the repository):\n" + "\n".join(cited)


@pytest.mark.parametrize("token, concrete", [
    ("cpp/src/drivers/<name>/", "cpp/src/drivers"),
    ("cpp/bindings/bind_<name>.cpp", "cpp/bindings"),
    ("docs/PROTOCOL.md.", "docs/PROTOCOL.md"),
    ("python/cuagent/backends/*.py", "python/cuagent/backends"),
    ("tests/test_cupti*.py", "tests"),
])
def test_placeholders_are_cut_before_checking(token: str, concrete: str) -> None:
    assert _concrete(token) == concrete
