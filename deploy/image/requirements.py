"""The runtime requirements of pyproject.toml: its dependencies plus one optional extra.

``python requirements.py pyproject.toml EXTRA`` prints them one per line; the Containerfiles install these
before copying the source, so the dependency layer is rebuilt only when pyproject.toml changes.

``python requirements.py pyproject.toml EXTRA --pinned`` prints instead ``name==version`` for every
distribution they need, transitively, as installed in the running environment (deploy/podman/build.sh uses
it to fill a wheelhouse with exactly the versions the test suite ran; tools installed beside them do not
count). Runs on the standard library plus ``packaging``.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata


def requirements(pyproject: str, extra: str) -> list[str]:
    with open(pyproject, "rb") as fh:
        project = tomllib.load(fh)["project"]
    extras = project.get("optional-dependencies", {})
    if extra and extra not in extras:
        msg = f"no extra {extra!r} in {pyproject} (have {', '.join(sorted(extras))})"
        raise SystemExit(msg)
    return [*project["dependencies"], *(extras[extra] if extra else [])]


def pinned(wanted: list[str]) -> list[str]:
    """``name==version`` of every installed distribution ``wanted`` needs, following their own requirements."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: dict[str, str] = {}
    todo = [(Requirement(r), "") for r in wanted]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            msg = f"{req.name} is required but not installed in {sys.prefix}"
            raise SystemExit(msg) from None
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen[key] = f"{name}=={dist.version}"
        for sub in dist.requires or []:
            parsed = Requirement(sub)
            for want_extra in sorted(req.extras) or [""]:
                todo.append((parsed, want_extra))
    return sorted(set(seen.values()))


if __name__ == "__main__":
    lines = requirements(sys.argv[1], sys.argv[2])
    if "--pinned" in sys.argv[3:]:
        lines = pinned(lines)
    sys.stdout.write("".join(f"{line}\n" for line in lines))
