"""The chain-of-custody report of an evidence package: one self-contained, printable HTML page.

It states the case, who requested the package, when and why, each saved item with who saved it and its audit
entry, each file with its camera, GB ID, time range in UTC and local time, how it was made (remuxed, redacted,
enhanced and with which operations) and its SHA-256, the signing key's ID and fingerprint, and how to verify the
package. Every value is HTML-escaped; the page loads nothing (inline CSS only, no script).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

CSS = """
body{font:11pt/1.4 system-ui,sans-serif;margin:2em;color:#111}
h1{font-size:18pt;margin:0 0 .2em}h2{font-size:13pt;margin:1.4em 0 .4em;border-bottom:1px solid #999}
table{border-collapse:collapse;width:100%;font-size:9pt}th,td{border:1px solid #bbb;padding:3px 5px;text-align:left;
vertical-align:top}th{background:#eee}code{font-size:8pt;word-break:break-all}dl{display:grid;
grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:600}dd{margin:0}.mark{font-weight:600;color:#a40}
@media print{body{margin:0}h2{break-after:avoid}tr{break-inside:avoid}}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _how(entry: Mapping[str, Any]) -> str:
    parts = []
    if entry.get("remuxed"):
        parts.append("original stream, remuxed (not re-encoded)")
    if entry.get("transcoded"):
        parts.append("re-encoded to H.264 for playback")
    if entry.get("redacted"):
        r = entry["redacted"]
        parts.append(f"<span class=mark>REDACTED copy</span> ({_e(r.get('faces_blurred', 0))} face and "
                     f"{_e(r.get('plates_blurred', 0))} plate regions blurred; re-encoded)")
    if entry.get("enhanced"):
        ops = "; ".join(f"{_e(o.get('op'))}({_e(o.get('params'))})" for o in entry.get("operations", []))
        parts.append(f"<span class=mark>ENHANCED copy</span> of {_e(entry.get('original'))}: {ops}")
    if entry.get("kind") == "still" and not entry.get("enhanced"):
        parts.append(_e(entry.get("note", "still")))
    return "<br>".join(parts) or _e(entry.get("kind"))


def render_report(header: Mapping[str, Any], files: Sequence[Mapping[str, Any]], signing: Mapping[str, str]) -> str:
    """The report page (``files``: manifest entries with path, sha256 and bytes)."""
    case = header.get("case", {})
    who = header.get("requested_by", {})
    rows = "".join(
        f"<tr><td><code>{_e(f['path'])}</code></td><td>{_e(f.get('kind'))}</td><td>{_e(f.get('camera_name'))}<br>"
        f"<code>{_e(f.get('camera_id'))}</code><br>GB {_e(f.get('gb_id') or '—')}</td>"
        f"<td>{_e(f.get('start_utc'))}<br>{_e(f.get('end_utc'))}</td><td>{_e(f.get('start_local'))}<br>"
        f"{_e(f.get('end_local'))}</td><td>{_how(f)}</td><td><code>{_e(f['sha256'])}</code><br>{_e(f['bytes'])} "
        f"bytes</td></tr>" for f in files)
    items = "".join(
        f"<tr><td><code>{_e(i.get('item_id'))}</code></td><td>{_e(i.get('kind'))}</td><td>{_e(i.get('text'))}</td>"
        f"<td>{_e(i.get('note'))}</td><td>{_e(i.get('added_by'))}<br>{_e(i.get('added_at'))}</td>"
        f"<td><code>{_e(i.get('audit_id'))}</code></td></tr>" for i in header.get("items", []))
    audit = ", ".join(f"<code>{_e(a)}</code>" for a in header.get("audit_entries", []))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chain of custody — {_e(case.get('number'))}</title>
<style>{CSS}</style></head><body>
<h1>Evidence package {_e(header.get('package_id'))}</h1>
<p>Chain-of-custody report of case <b>{_e(case.get('number'))}</b> — {_e(case.get('title'))}</p>
<h2>Case</h2><dl><dt>Number</dt><dd>{_e(case.get('number'))}</dd><dt>Type</dt><dd>{_e(case.get('case_type'))}</dd>
<dt>Unit</dt><dd>{_e(case.get('unit'))}</dd><dt>Legal basis</dt><dd>{_e(case.get('legal_basis'))}</dd>
<dt>Purpose</dt><dd>{_e(case.get('purpose'))}</dd><dt>Owner</dt><dd>{_e(case.get('owner'))}</dd>
<dt>Status</dt><dd>{_e(case.get('status'))}</dd></dl>
<h2>Request</h2><dl><dt>Requested by</dt><dd>{_e(who.get('user'))} ({_e(who.get('role'))})</dd>
<dt>When (UTC)</dt><dd>{_e(header.get('created_at'))}</dd><dt>When (local)</dt><dd>{_e(header.get('created_local'))}
({_e(header.get('timezone'))})</dd><dt>Why</dt><dd>{_e(header.get('reason'))}</dd>
<dt>Redaction</dt><dd>{_e(header.get('redaction', {}).get('summary', 'none'))}</dd>
<dt>Audit entries</dt><dd>{audit}</dd></dl>
<h2>Items</h2><table><tr><th>Item</th><th>Kind</th><th>What</th><th>Note</th><th>Saved by</th><th>Audit entry</th>
</tr>{items}</table>
<h2>Files</h2><table><tr><th>File</th><th>Kind</th><th>Camera</th><th>UTC</th><th>Local</th><th>How made</th>
<th>SHA-256</th></tr>{rows}</table>
<h2>Signature</h2><dl><dt>Algorithm</dt><dd>{_e(signing.get('algorithm'))}</dd><dt>Key</dt>
<dd>{_e(signing.get('key_id'))}</dd><dt>Fingerprint</dt><dd><code>{_e(signing.get('fingerprint'))}</code></dd></dl>
<p>manifest.json lists every file with its SHA-256 (this report included) and is signed in signature.json. Check
the package with <code>tubeline evidence verify PACKAGE</code> (and <code>--public-key</code> with the key whose
fingerprint is above when checking elsewhere): a change of any byte fails.</p>
</body></html>
"""
