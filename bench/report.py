"""docs/BENCHMARKS.md: each bench owns one ``## bench/<name>.py`` section and replaces it."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"


def write_section(heading: str, section: str, path: Path = BENCHMARKS) -> None:
    """Replace the section that starts with ``heading`` (up to the next ``## ``), or append it."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    start = text.find(heading)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1:] if end != -1 else "")
    path.write_text(text, encoding="utf-8")
