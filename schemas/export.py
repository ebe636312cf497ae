"""Export the event contract as JSON Schema (draft 2020-12) for producers in other languages.

    python -m schemas.export            # writes schemas/json/<type>.json and event.json
    python -m schemas.export --check    # exit 1 if the files on disk are stale

One file per event type (named after its ``type`` discriminator) plus ``event.json``, the union
of all of them. A unit test fails when the committed files differ from what this renders.
Checks a schema cannot express (``occurred_at`` not before 2000 nor more than 24 h ahead,
``decline_reason`` only with a decline, the 16 KiB record limit) are enforced by
``schemas.codec.decode`` and listed in each file's ``description``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import TypeAdapter

from schemas.codec import MAX_EVENT_BYTES
from schemas.events import EVENT_TYPES, SCHEMA_VERSION, AnyEvent

JSON_DIR = Path(__file__).parent / "json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
_ID_BASE = "https://nbo-engine.example/schemas/v{version}/"

_EXTRA_RULES = (
    f"Also enforced on decode: a record is at most {MAX_EVENT_BYTES} bytes of UTF-8 JSON; occurred_at is not "
    "before 2000-01-01 and at most 24 h in the future."
)


def _text(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render() -> dict[str, str]:
    """File name -> JSON text of every schema file, exactly as written."""
    base = _ID_BASE.format(version=SCHEMA_VERSION)
    files: dict[str, str] = {}
    for type_name, model in EVENT_TYPES.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = DRAFT
        schema["$id"] = f"{base}{type_name}.json"
        schema["description"] = " ".join((model.__doc__ or "").split()) + " " + _EXTRA_RULES
        if type_name == "offer_outcome":
            schema["description"] += " decline_reason is required when outcome is 'declined' and only then."
        files[f"{type_name}.json"] = _text(schema)
    union = TypeAdapter(AnyEvent).json_schema(mode="validation")
    union["$schema"] = DRAFT
    union["$id"] = f"{base}event.json"
    union["title"] = "Event"
    union["description"] = "Any event of the NBO contract, told apart by its 'type'. " + _EXTRA_RULES
    files["event.json"] = _text(union)
    return files


def stale(directory: Path = JSON_DIR) -> list[str]:
    """Names of schema files that are missing, different or no longer produced."""
    expected = render()
    problems = [name for name, text in expected.items()
                if not (directory / name).exists() or (directory / name).read_text(encoding="utf-8") != text]
    if directory.exists():
        problems += sorted(p.name for p in directory.glob("*.json") if p.name not in expected)
    return problems


def export(directory: Path = JSON_DIR) -> list[Path]:
    """Write every schema file (and remove ones no longer produced); returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    expected = render()
    for old in directory.glob("*.json"):
        if old.name not in expected:
            old.unlink()
    written = []
    for name, text in expected.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=JSON_DIR)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale(args.dir)
        if problems:
            print(f"stale JSON Schema files in {args.dir}: {', '.join(problems)}; run python -m schemas.export",
                  file=sys.stderr)
            return 1
        print(f"{args.dir}: up to date")
        return 0
    for path in export(args.dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
