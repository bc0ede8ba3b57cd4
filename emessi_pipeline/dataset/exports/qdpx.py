"""REFI-QDA project exchange (.qdpx): the dataset out to QualCoder, ATLAS.ti, MAXQDA or NVivo,
and codings back in.

A .qdpx is a zip of `project.qde` (XML, validated against the REFI-QDA 1.0 project schema
vendored in data/) and `sources/`. Per recording: an audio/video source whose transcript is a
plain-text file with two sync points per observation (start, end) and one transcript selection
per observation, named by its observation id; codings hang on those selections. Dimensions are
top-level codes (not codable) with the codebook's codes under them; coders are users; each
(recording, speaker label) is a case with role, group, session and participant variables.

GUIDs are uuid5 of stable keys, so exporting twice gives the same ids and an import can map a
selection, a sync point or a code back even when another tool renamed it.

What the QDA programs read besides the schema (docs/qda.md): QualCoder gives every coding of a
transcript the owner named by the `<Transcript>`'s creatingUser, so a transcript that carries one
coder's codings names that coder (several coders: none, and `coder=` exports one coder's project);
source names keep the media file's extension because QualCoder names the copied media after them;
each line starts with a `#hh:mm:ss.sss#` stamp, the millisecond form QualCoder syncs text to media by.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
import xml.etree.ElementTree as ET
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ...version import __version__
from ..archives import check_archive
from ..batches import set_counts, start_batch
from ..codebook import load_active
from ..coders import find_coder
from ..coding import CodingChange, ImportSummary, apply_change, plan_change, summary_counts
from ..connection import transaction
from ..common import DatasetError, Recording, all_recordings, clock, resolve_recording
from .lines import lines

NS = "urn:QDA-XML:project:1.0"
XSD = "refi-qda-project-mrt2019.xsd"
_ROOT = uuid.UUID("5b0f8a1e-6c9d-4e53-9a57-0e3e55e5551a")


def guid(kind: str, key: str) -> str:
    return str(uuid.uuid5(_ROOT, f"{kind}:{key}"))


def _el(parent, tag: str, **attrs) -> ET.Element:
    return ET.SubElement(parent, f"{{{NS}}}{tag}", {k: str(v) for k, v in attrs.items() if v is not None})


def schema():
    import xmlschema

    with resources.as_file(resources.files("emessi_pipeline") / "data" / XSD) as path:
        return xmlschema.XMLSchema(str(path))


def validate(qde: bytes) -> list[str]:
    """Every way the XML breaks the REFI-QDA project schema (empty: valid)."""
    return [str(e.reason or e).splitlines()[0] + f" (at {e.path})" for e in schema().iter_errors(qde)]


# ---------------------------------------------------------------- export


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    sources: int
    selections: int
    codings: int
    cases: int
    # Recordings whose transcript carries several coders' codings and so names no owner:
    # QualCoder files all of them under "default" (the caller should say so).
    shared: tuple[str, ...] = ()


def export_qdpx(con, out: Path, recordings: list[str] | None = None, include_media: bool = False,
                coder: str | None = None, relative_media: bool = False, base_path: str | None = None,
                with_names: bool = False) -> ExportSummary:
    """Write the project to `out`.

    coder: only this coder's codings, and every transcript owned by them (QualCoder's one owner per
    transcript). relative_media: link media not copied in as `relative://` paths from the project
    file's folder, with the project's basePath set to `base_path` or else to that folder here.
    with_names: speakers by name instead of their pseudonymous participant id.
    """
    recs = [resolve_recording(con, r) for r in recordings] if recordings else all_recordings(con)
    if not recs:
        raise DatasetError("no recordings to export")
    stamp = dt.datetime.now().replace(microsecond=0).isoformat()
    ET.register_namespace("", NS)
    project = ET.Element(f"{{{NS}}}Project", {"name": out.stem, "origin": f"emessi-pipeline {__version__}",
                                              "creationDateTime": stamp})  # fmt: skip
    base = out.resolve().parent
    if relative_media:
        # QualCoder joins basePath and the rest of a relative:// path as strings: no trailing slash here,
        # a leading one there.
        project.set("basePath", (base_path or base.as_posix()).rstrip("/\\"))
    ids = [r.recording_id for r in recs]
    codings = con.execute(
        "SELECT coding_id, observation_id, coder, dimension, code, coded_at FROM current_codings "
        "WHERE list_contains(?, recording_id) AND (? IS NULL OR coder = ?) ORDER BY observation_id, coder, dimension, code",
        [ids, coder, coder],
    ).fetchall()
    # The requested coder is a user even before they coded anything: their project names them.
    coders = sorted({c[2] for c in codings} | ({coder} if coder else set()))
    if coders:
        users = _el(project, "Users")
        for coder in coders:
            _el(users, "User", guid=guid("user", coder), name=coder, id=coder)
    _codebook(con, project)
    variables = _el(project, "Variables")
    for name, kind in (("role", "Text"), ("group", "Text"), ("session", "Integer"), ("participant", "Text"),
                       ("speaker_label", "Text")):  # fmt: skip
        _el(variables, "Variable", guid=guid("variable", name), name=name, typeOfVariable=kind)
    by_obs = defaultdict(list)
    for c in codings:
        by_obs[c[1]].append(c)
    cases_el = ET.Element(f"{{{NS}}}Cases")
    sources = _el(project, "Sources")
    files: dict[str, bytes | Path] = {}
    n_sel = n_cases = 0
    shared = []
    for rec in recs:
        rec, items = lines(con, rec.recording_id, with_names)
        n_sel += len(items)
        media = Path(rec.path)
        source_guid = guid("source", rec.recording_id)
        if include_media and media.exists():
            inner = f"{source_guid}{media.suffix.lower()}"
            files[inner], path = media, f"internal://{inner}"
        else:
            path = _linked(media, base if relative_media else None)
        owners = {c[2] for i in items for c in by_obs.get(i.observation_id, [])} or ({coder} if coder else set())
        if len(owners) > 1:
            shared.append(rec.name)
        owner = guid("user", next(iter(owners))) if len(owners) == 1 else None
        tag = "VideoSource" if (rec.video_streams or 0) > 0 else "AudioSource"
        source = _el(sources, tag, guid=source_guid, name=f"{rec.name}{media.suffix}", path=path,
                     creatingUser=owner, creationDateTime=stamp)  # fmt: skip
        text, spans = _transcript_text(items)
        transcript_guid = guid("transcript", rec.recording_id)
        files[f"{transcript_guid}.txt"] = text.encode("utf-8")
        transcript = _el(source, "Transcript", guid=transcript_guid, name=f"{rec.name} transcript",
                         plainTextPath=f"internal://{transcript_guid}.txt", creatingUser=owner,
                         creationDateTime=stamp)  # fmt: skip
        for item, (a, b) in zip(items, spans):
            _el(transcript, "SyncPoint", guid=guid("sync-start", item.observation_id), timeStamp=int(round(item.start_s * 1000)), position=a)
            _el(transcript, "SyncPoint", guid=guid("sync-end", item.observation_id), timeStamp=int(round(item.end_s * 1000)), position=b)
        for item in items:
            selection = _el(transcript, "TranscriptSelection", guid=guid("selection", item.observation_id),
                            name=item.observation_id, fromSyncPoint=guid("sync-start", item.observation_id),
                            toSyncPoint=guid("sync-end", item.observation_id))  # fmt: skip
            for coding_id, _, coder, dim, code, coded_at in by_obs.get(item.observation_id, []):
                coding = _el(selection, "Coding", guid=guid("coding", coding_id), creatingUser=guid("user", coder),
                             creationDateTime=coded_at.replace(microsecond=0).isoformat() if coded_at else None)  # fmt: skip
                _el(coding, "CodeRef", targetGUID=guid("code", f"{dim}/{code}"))
        n_cases += _cases(cases_el, rec, items)
    if n_cases:
        project.insert(list(project).index(sources), cases_el)
    qde = ET.tostring(project, encoding="utf-8", xml_declaration=True)
    problems = validate(qde)
    if problems:  # a bug here, not the user's input: refuse to write an invalid project
        raise RuntimeError("the exported project does not validate against the REFI-QDA schema:\n" + "\n".join(problems[:10]))
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("project.qde", qde)
        for name, data in files.items():
            if isinstance(data, Path):
                with data.open("rb") as src, archive.open(f"sources/{name}", "w") as dst:
                    shutil.copyfileobj(src, dst)
            else:
                archive.writestr(f"sources/{name}", data)
    return ExportSummary(out, len(recs), n_sel, len(codings), n_cases, tuple(shared))


def _linked(media: Path, base: Path | None) -> str:
    """absolute:// on this machine, or relative:// from `base` (the project's folder)."""
    if base is not None:
        try:
            return "relative:///" + Path(os.path.relpath(media.resolve(), base)).as_posix()
        except ValueError:  # another drive on Windows: no relative path exists
            pass
    return f"absolute://{media.resolve()}"


def _transcript_text(items) -> tuple[str, list[tuple[int, int]]]:
    """One line per observation; the sync points bracket the spoken text (positions in characters)."""
    parts, spans, position = [], [], 0
    for item in items:
        prefix = f"#{clock(item.start_s)}# {item.speaker_long}: "
        start = position + len(prefix)
        parts.append(prefix + item.text + "\n")
        spans.append((start, start + len(item.text)))
        position += len(parts[-1])
    return "".join(parts), spans


def _codebook(con, project) -> None:
    rows = con.execute(
        """SELECT d.dimension, d.label, d.description, d.retired, c.code, c.label, c.description, c.retired
           FROM codebook_dimensions d JOIN codebook_codes c USING (dimension)
           ORDER BY d.retired, d.position, c.retired, c.position"""
    ).fetchall()
    if not rows:
        return
    codes = _el(_el(project, "CodeBook"), "Codes")
    parents = {}
    for dim, dlabel, ddesc, dretired, code, label, desc, retired in rows:
        if dim not in parents:
            parents[dim] = _el(codes, "Code", guid=guid("dimension", dim), name=dlabel or dim, isCodable="false")
            _el(parents[dim], "Description").text = f"[dimension {dim}]{' (retired)' if dretired else ''} {ddesc or ''}".strip()
        node = _el(parents[dim], "Code", guid=guid("code", f"{dim}/{code}"), name=label or code,
                   isCodable="false" if retired else "true")  # fmt: skip
        _el(node, "Description").text = f"[{dim}/{code}]{' (retired)' if retired else ''} {desc or ''}".strip()


def _cases(cases_el, rec: Recording, items) -> int:
    speakers = {}
    for item in items:
        speakers.setdefault(item.speaker_label, []).append(item)
    for label, said in speakers.items():
        first = said[0]
        case = _el(cases_el, "Case", guid=guid("case", f"{rec.recording_id}/{label}"),
                   name=f"{first.speaker} – {rec.name}")  # fmt: skip
        values = [("role", "TextValue", first.role), ("group", "TextValue", rec.group_id),
                  ("session", "IntegerValue", rec.session_no), ("participant", "TextValue", first.participant_id),
                  ("speaker_label", "TextValue", label)]  # fmt: skip
        for name, kind, value in values:
            if value is None:
                continue
            vv = _el(case, "VariableValue")
            _el(vv, "VariableRef", targetGUID=guid("variable", name))
            _el(vv, kind).text = str(value)
        _el(case, "SourceRef", targetGUID=guid("source", rec.recording_id))
        for item in said:
            _el(case, "SelectionRef", targetGUID=guid("selection", item.observation_id))
    return len(speakers)


# ---------------------------------------------------------------- import


def read_qdpx_codings(con, path: Path, default_coder: str | None = None) -> tuple[dict, list[str]]:
    """{coder: {(observation, dimension): {codes}}} and every problem found."""
    check_archive(path, "project (.qdpx)", read=lambda name: name == "project.qde")  # media stay packed
    try:
        with zipfile.ZipFile(path) as archive:
            qde = archive.read("project.qde")
    except (zipfile.BadZipFile, KeyError, OSError) as error:
        raise DatasetError(f"{path}: not a REFI-QDA project (.qdpx zip with project.qde): {error}") from None
    problems = validate(qde)
    if problems:
        raise DatasetError(f"{path}: project.qde does not follow the REFI-QDA project schema", problems[:20])
    root = ET.fromstring(qde)
    q = f"{{{NS}}}"
    users = {u.get("guid"): u.get("name") or u.get("id") for u in root.iter(f"{q}User")}
    codes = _code_map(con, root, q)
    observations = _observation_map(con)
    wanted: dict[str, dict[tuple[str, str], set[str]]] = defaultdict(lambda: defaultdict(set))
    problems = []
    for selection in root.iter(f"{q}TranscriptSelection"):
        where = f"selection {selection.get('name') or selection.get('guid')}"
        codings = selection.findall(f"{q}Coding")
        if not codings:
            continue
        obs = observations.get(selection.get("name")) or observations.get(selection.get("guid")) \
            or observations.get(selection.get("fromSyncPoint"))  # fmt: skip
        if obs is None:
            problems.append(f"{where}: does not match an observation (keep emessi's selections; code whole lines)")
            continue
        for coding in codings:
            coder = users.get(coding.get("creatingUser")) or default_coder
            ref = coding.find(f"{q}CodeRef").get("targetGUID")
            if coder is None:
                problems.append(f"{where}: coding {coding.get('guid')} names no user; give --coder NAME")
            elif ref not in codes:
                problems.append(f"{where}: code {ref} is not a code of the codebook")
            else:
                dim, code = codes[ref]
                wanted[coder][(obs, dim)].add(code)
    for tag in ("PlainTextSelection", "AudioSelection", "VideoSelection"):
        for selection in root.iter(f"{q}{tag}"):
            if selection.find(f"{q}Coding") is not None:
                problems.append(f"{tag} {selection.get('name') or selection.get('guid')}: codings outside the "
                                "transcript selections cannot be mapped to observations")  # fmt: skip
    return wanted, problems


def _code_map(con, root, q) -> dict[str, tuple[str, str]]:
    """Code GUID -> (dimension, code): emessi's own GUIDs, else a dimension/code named by id or label."""
    known = con.execute("SELECT d.dimension, d.label, c.code, c.label FROM codebook_codes c JOIN codebook_dimensions d USING (dimension)").fetchall()
    result = {guid("code", f"{d}/{c}"): (d, c) for d, _, c, _ in known}
    for parent in root.iter(f"{q}Code"):
        for child in parent.findall(f"{q}Code"):
            if child.get("guid") in result:
                continue
            for d, dlabel, c, clabel in known:
                if parent.get("name") in (d, dlabel) and child.get("name") in (c, clabel):
                    result[child.get("guid")] = (d, c)
    return result


def _observation_map(con) -> dict[str, str]:
    ids = [r[0] for r in con.execute("SELECT observation_id FROM observations").fetchall()]
    result = {i: i for i in ids}
    for i in ids:
        result[guid("selection", i)] = i
        result[guid("sync-start", i)] = i
    return result


def import_qdpx(con, path: Path, default_coder: str | None = None) -> ImportSummary:
    """Check the whole project first, then write every coder's codings in one transaction."""
    if load_active(con).version is None:
        raise DatasetError("no codebook yet: run `emessi codebook import FILE` first")
    wanted, problems = read_qdpx_codings(con, path, default_coder)
    if problems:
        raise DatasetError(f"nothing imported: {len(problems)} problem(s)", problems)
    # A project's users are coders of the registry, matched ignoring case (`Anna` is anna).
    registered: dict[str, dict] = defaultdict(lambda: defaultdict(set))
    for coder, cells in wanted.items():
        for key, codes in cells.items():
            registered[find_coder(con, coder) or coder][key] |= codes
    wanted = registered
    book = load_active(con)
    for coder, cells in wanted.items():
        for (obs, dim), codes in cells.items():
            if len(codes) > 1 and not book.dimensions.get(dim, False):
                problems.append(f"{obs}: {coder} gave {len(codes)} {dim} codes ({', '.join(sorted(codes))}) but the dimension allows one")
            retired = [c for c in codes if book.codes.get(dim, {}).get(c)]
            if retired or dim in book.retired_dimensions:
                problems.append(f"{obs}: {dim} code(s) {', '.join(retired) or dim} retired in the codebook")
    if problems:
        raise DatasetError(f"nothing imported: {len(problems)} problem(s)", problems)
    changes = {coder: plan_change(con, coder, cells, []) for coder, cells in wanted.items()}
    total = CodingChange()
    carried = review = 0
    rows = sum(len(cells) for cells in wanted.values())
    with transaction(con):
        batch = start_batch(con, "import", ",".join(sorted(changes)) or default_coder, f"qdpx:{path.name}", path)
        for coder, change in changes.items():
            c, r = apply_change(con, change, f"qdpx:{path.name}", coder, batch)
            carried, review = carried + c, review + r
            total.add += change.add
            total.supersede += change.supersede
            total.unchanged += change.unchanged
        summary = ImportSummary(rows, len(total.add), len(total.supersede), total.unchanged, 0, carried, review,
                                batch=batch)  # fmt: skip
        set_counts(con, batch, summary_counts(summary))
    return summary
