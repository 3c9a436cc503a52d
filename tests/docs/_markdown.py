"""The fenced code blocks of ``README.md`` and ``docs/*.md``, as the snippet tests collect them.

A block is executed when its info string starts with ``python``, ``bash``, ``shell`` or
``console``; any other info string (``text``, none, ``json``, MyST directives such as
``{eval-rst}``, ``{include}``, ``{note}``) is display only. ``python norun`` / ``bash norun``
marks a block that cannot run here; its first line is a comment that says why
(``# needs PyPI: ...``), which the test reports as the reason it is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXECUTED = {"python": "python", "bash": "shell", "shell": "shell", "console": "shell"}
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_SAVE_AS = re.compile(r"Save it as `(?P<path>[^`]+)`")


@dataclass(frozen=True)
class Snippet:
    """One executed fenced block: ``file:line`` (its opening fence, 1-based) names its test."""

    file: str  # relative to the repository root, e.g. "docs/exports.md"
    line: int
    language: str  # "python" or "shell"
    code: str
    norun: str | None = None  # the reason, for a block marked norun
    save_as: str | None = None  # "Save it as `PATH`" in the prose just before the block

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def is_dag(self) -> bool:
        return self.language == "python" and "DAG(" in self.code


def markdown_files(root: Path = ROOT) -> list[Path]:
    """README.md and every docs/*.md page, in a stable order."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def snippets_of(path: Path, root: Path = ROOT) -> list[Snippet]:
    """The executed blocks of one Markdown file, in page order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Snippet] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, start = match["fence"], i
        end = next(
            (
                j
                for j in range(i + 1, len(lines))
                if lines[j].strip().startswith(fence) and not lines[j].strip()[len(fence) :].strip()
            ),
            len(lines),
        )
        words = match["info"].split()
        language = EXECUTED.get(words[0]) if words else None
        if language is not None:
            body = [line[len(match["indent"]) :] for line in lines[start + 1 : end]]
            code = "\n".join(body) + "\n"
            if words[0] == "console":  # only the prompted lines are commands
                code = "".join(line[2:] + "\n" for line in body if line.startswith("$ "))
            norun = None
            if "norun" in words[1:]:
                first = body[0].strip() if body else ""
                norun = first.lstrip("#").strip() if first.startswith("#") else ""
            prose = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
            save = _SAVE_AS.search(prose)
            found.append(
                Snippet(
                    file=path.relative_to(root).as_posix(),
                    line=start + 1,
                    language=language,
                    code=code,
                    norun=norun,
                    save_as=save["path"] if save else None,
                )
            )
        i = end + 1
    return found


def all_snippets(root: Path = ROOT) -> list[Snippet]:
    return [snippet for path in markdown_files(root) for snippet in snippets_of(path, root)]
