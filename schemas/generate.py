"""Writes (or checks) the committed JSON Schema files from the message classes.

    python -m schemas.generate            # rewrite schemas/json/*.v1.json
    python -m schemas.generate --check    # exit 1 if any committed file is stale or missing

The committed files are the contract that producers, consumers and tests rely on; CI runs
``--check`` so a class change that is not reflected in ``schemas/json/`` fails the build.
Files are rendered deterministically (two-space indent, keys in class order, UTF-8, final
newline) so a regeneration without class changes leaves git clean.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from schemas.common import WireMessage
from schemas.registry import MESSAGE_TYPES

SCHEMA_DIR = Path(__file__).resolve().parent / "json"


def render(cls: type[WireMessage]) -> str:
    """The exact text of the schema file for ``cls``."""
    return json.dumps(cls.json_schema(), indent=2, ensure_ascii=False) + "\n"


def expected_files() -> dict[str, str]:
    """File name -> text for every message class."""
    return {cls.schema_file_name(): render(cls) for cls in MESSAGE_TYPES}


def stale_files(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files in ``directory`` that are missing, differ from the classes, or
    belong to no class (left over after a rename)."""
    expected = expected_files()
    stale = []
    for name, text in expected.items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    if directory.is_dir():
        stale.extend(sorted(p.name for p in directory.glob("*.json") if p.name not in expected))
    return sorted(stale)


def write_files(directory: Path = SCHEMA_DIR) -> list[str]:
    """Writes every schema file that differs and removes files of no class; returns their names."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = stale_files(directory)
    expected = expected_files()
    for name in changed:
        path = directory / name
        if name in expected:
            path.write_text(expected[name], encoding="utf-8")
        else:
            path.unlink()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m schemas.generate",
        description="Write the JSON Schema files of the Tubeline wire messages, or check they are current.",
    )
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if any file is stale")
    parser.add_argument(
        "--dir", type=Path, default=SCHEMA_DIR, help="schema directory (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.dir)
        if stale:
            sys.stderr.write(
                "stale JSON Schema files (run `python -m schemas.generate`): " + ", ".join(stale) + "\n"
            )
            return 1
        sys.stdout.write(f"{len(MESSAGE_TYPES)} schema files are current in {args.dir}\n")
        return 0
    changed = write_files(args.dir)
    sys.stdout.write(f"wrote {len(changed)} of {len(MESSAGE_TYPES)} schema files in {args.dir}\n")
    for name in changed:
        sys.stdout.write(f"  {name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
