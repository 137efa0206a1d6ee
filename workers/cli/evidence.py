"""``tubeline evidence``: verify an evidence package, show or rotate the installation's signing key.

``verify PACKAGE`` checks the Ed25519 signature of the manifest, that the signing key is trusted (one of this
installation's keys from ``cases.evidence_key_file``, or the keys given with ``--public-key``), every file's
SHA-256 and size, and that the archive is exactly the packing of its members: exit 0 and "OK" only when all of
that holds, exit 1 with every problem otherwise. It reads no object store, so it runs wherever the package and
a key are.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from workers.cli import load_config_or_exit

if TYPE_CHECKING:
    from pipeline.cases.signing import EvidenceKeys


@click.group("evidence")
def evidence() -> None:
    """Evidence packages: verify one; show or rotate the signing key."""


def _keys(ctx: click.Context) -> EvidenceKeys:
    from pipeline.cases.signing import EvidenceKeys

    config = load_config_or_exit(ctx)
    return EvidenceKeys(config.cases.evidence_key_file, create=config.cases.create_key_file)


def _trusted(ctx: click.Context, public_keys: tuple[str, ...]) -> dict[str, bytes]:
    from pipeline.cases.signing import unb64

    if not public_keys:
        return _keys(ctx).public_keys()
    trusted = {}
    for text in public_keys:
        key_id, _, value = text.partition("=")
        path = Path(value)
        raw = unb64(path.read_text().strip() if path.is_file() else value.strip())
        if not key_id or raw is None or len(raw) != 32:
            msg = "expected KEY_ID=BASE64 (or KEY_ID=FILE) of a 32-byte Ed25519 public key"
            raise click.BadParameter(msg,
                                     param_hint="--public-key")
        trusted[key_id] = raw
    return trusted


@evidence.command("verify")
@click.argument("package", type=click.Path(exists=True, path_type=Path))
@click.option("--public-key", "public_keys", multiple=True,
              help="KEY_ID=BASE64 (or KEY_ID=FILE): trust this key instead of the installation's (repeat).")
@click.option("--quiet", is_flag=True, help="Print only problems.")
@click.pass_context
def verify(ctx: click.Context, package: Path, public_keys: tuple[str, ...], quiet: bool) -> None:
    """Check an evidence package (a .zip, or the folder it was extracted to)."""
    from pipeline.cases.package import verify_package

    report = verify_package(package, _trusted(ctx, public_keys))
    if not report.ok:
        for problem in report.problems:
            click.echo(f"FAIL {problem}")
        sys.exit(1)
    if not quiet:
        case = report.manifest.get("case", {})
        click.echo(f"OK {package}: case {case.get('number')}, {report.files_checked} files, signed by key "
                   f"{report.key_id} ({report.fingerprint})")


@evidence.command("key")
@click.pass_context
def key(ctx: click.Context) -> None:
    """Print this installation's public signing keys (ID, base64, fingerprint); the first one signs."""
    from pipeline.cases.signing import b64, fingerprint

    keys = _keys(ctx)
    keys.current()  # generates the key file on first use where allowed
    for key_id, public in keys.public_keys().items():
        click.echo(f"{key_id} {b64(public)} {fingerprint(public)}")


@evidence.command("rotate-key")
@click.pass_context
def rotate_key(ctx: click.Context) -> None:
    """Sign new packages with a new key (older keys stay in the file so their packages still verify)."""
    click.echo(f"new signing key {_keys(ctx).rotate()}")
