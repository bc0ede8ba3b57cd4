"""Spreadsheets as Finnish researchers use them: Excel's ';' and Windows-1252, code ids with
Finnish letters, a recording named with ä/ö, and the wide coded dataset in XLSX, CSV, Parquet and
SPSS, read back with openpyxl, csv, pyarrow, pyreadstat and python-docx."""

from __future__ import annotations

import codecs
import csv
import io
import shutil
import subprocess
import unicodedata
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pyreadstat
import pytest
from docx import Document
from openpyxl import load_workbook

from emessi_pipeline.cli import Exit

from .dataset_fixtures import AMI, DEMO, dataset_base, db, read, emessi  # noqa: F401

pytestmark = pytest.mark.slow

NAME = "Ryhmä_ö"  # the demo recording, renamed as a Finnish file would be (Ryhmä_ö.mp4)
CODEBOOK = """name: suomi
dimensions:
  - id: aihe
    label: Aihe
    multiple: true
    codes:
      - {id: työaika, label: Työaika}
      - {id: hyvinvointi, label: Työhyvinvointi}
      - {id: muu, label: Muu (å)}
  - id: tehtävä
    label: Puheenvuoron tehtävä
    codes:
      - {id: kysymys, label: Kysymys}
      - {id: kokemus, label: Kokemuksen jakaminen}
"""


@pytest.fixture
def finnish(db, tmp_path):
    """The demo renamed Ryhmä_ö, a codebook with Finnish ids, one speaker assigned a participant."""
    con = duckdb.connect(str(db))
    con.execute("UPDATE recordings SET name = ? WHERE name = ?", [NAME, DEMO])
    con.close()
    book = tmp_path / "koodikirja.yaml"
    book.write_text(CODEBOOK, encoding="utf-8")
    emessi("codebook", "import", book, "--db", db)
    emessi("speakers", "assign", NAME, "SPEAKER_00", "--participant", "G1-P01", "--role", "leader", "--name", "Äijä", "--db", db)
    return db


def _rows(path: Path, encoding: str, delimiter: str) -> list[dict]:
    with open(path, newline="", encoding=encoding) as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def _save(rows: list[dict], path: Path, encoding: str, delimiter: str) -> Path:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), delimiter=delimiter)
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def test_sheet_for_finnish_excel_and_back_in_every_encoding_and_delimiter(finnish, tmp_path):
    db = finnish
    sheet = tmp_path / "anna.csv"
    emessi("coding", "export", "--coder", "anna", "--recording", NAME, "--out", sheet, "--delimiter", ";", "--db", db)
    raw = sheet.read_bytes()
    assert raw.startswith(codecs.BOM_UTF8)  # Excel reads UTF-8 only with the mark
    header = raw[3:].split(b"\r\n" if b"\r\n" in raw else b"\n", 1)[0].decode()
    assert header.split(";")[:3] == ["observation_id", "recording", "group"] and "tehtävä" in header.split(";")
    rows = _rows(sheet, "utf-8-sig", ";")
    count = read(db, "SELECT count(*) FROM utterances WHERE recording_name = ?", [NAME])[0][0]
    assert len(rows) == count and {r["recording"] for r in rows} == {NAME}
    assert "," in rows[1]["start_s"] and "." not in rows[1]["start_s"]  # decimal comma, as Excel in Finnish writes

    # As Excel on a Finnish Windows saves it (CSV, semicolons, Windows-1252), as a UTF-8 file with
    # commas and no mark (LibreOffice, Google Sheets), and as Excel's "Unicode text" (UTF-16, tabs).
    saves = {"anna": ("cp1252", ";"), "ben": ("utf-8", ","), "cia": ("utf-16", "\t")}
    for i, row in enumerate(rows):
        row["aihe"] = "työaika;muu" if i % 2 else "hyvinvointi"
        row["tehtävä"] = "kokemus"
    rows[0]["corrected_text"] = "Äänitys alkaa, sanoo Åsa"
    for coder, (encoding, delimiter) in saves.items():
        path = _save(rows, tmp_path / f"{coder}-saved.csv", encoding, delimiter)
        if encoding == "cp1252":
            assert "työaika".encode("cp1252") in path.read_bytes()  # really not UTF-8
        emessi("coding", "import", path, "--coder", coder, "--new-coder", "--db", db)
    for coder in saves:
        got = read(db, "SELECT count(*) FILTER (code = 'työaika'), count(*) FILTER (dimension = 'tehtävä') "
                       "FROM current_codings WHERE coder = ?", [coder])[0]  # fmt: skip
        assert got == (count // 2, count)
    assert read(db, "SELECT text FROM utterances WHERE observation_id = ?", [rows[0]["observation_id"]])[0][0] == "Äänitys alkaa, sanoo Åsa"

    # 'työaika' typed on a Mac may come decomposed (o + combining diaeresis): the same code.
    rows[1]["aihe"] = unicodedata.normalize("NFD", "työaika")
    assert rows[1]["aihe"] != "työaika"
    emessi("coding", "import", _save(rows[:2], tmp_path / "mac.csv", "utf-8", ","), "--coder", "dora", "--new-coder", "--db", db)
    assert read(db, "SELECT code FROM current_codings WHERE coder = 'dora' AND dimension = 'aihe' AND observation_id = ?",
                [rows[1]["observation_id"]]) == [("työaika",)]  # fmt: skip


def test_bad_bytes_and_bad_codes_are_one_line_errors_naming_the_file(finnish, tmp_path):
    db = finnish
    broken = tmp_path / "rikki.csv"
    broken.write_bytes(b"observation_id;aihe\r\nx;ty\x81\x8daika\r\n")  # neither UTF-8 nor Windows-1252
    result = emessi("coding", "import", broken, "--coder", "anna", "--new-coder", "--db", db, code=Exit.USAGE)
    assert str(broken) in result.output and "Windows-1252" in result.output and "Traceback" not in result.output
    book = tmp_path / "kirja.yaml"
    book.write_text(CODEBOOK.replace("työaika", "Työaika"), encoding="utf-8")
    result = emessi("codebook", "import", book, "--db", db, code=Exit.USAGE)
    assert "'Työaika'" in result.output and "å, ä, ö" in result.output
    result = emessi("export", "table", "utterances", tmp_path / "u.csv", "--delimiter", "|", "--db", db, code=Exit.USAGE)
    assert "--delimiter '|': use ',', ';', 'tab' or 'auto'" in result.output and not (tmp_path / "u.csv").exists()


def test_codebook_and_assignments_from_excel_csv_in_windows_1252(db, tmp_path):
    book = tmp_path / "koodit.csv"
    book.write_bytes("dimension;code;label;description\r\naihe;työaika;Työaika;Työajat\r\naihe;muu;Muu;Å\r\n".encode("cp1252"))
    emessi("codebook", "import", book, "--db", db)
    assert read(db, "SELECT code, label FROM codebook_codes ORDER BY position") == [("työaika", "Työaika"), ("muu", "Muu")]
    people = tmp_path / "puhujat.csv"
    people.write_bytes(f"recording;speaker_label;participant;role;name\r\n{DEMO};SPEAKER_00;G1-P01;leader;Äijä Öhman\r\n".encode("cp1252"))
    emessi("speakers", "import", people, "--db", db)
    assert read(db, "SELECT name FROM participants WHERE participant_id = 'G1-P01'") == [("Äijä Öhman",)]


def _finnish_locale(tmp_path: Path) -> Path:
    """A compiled fi_FI.UTF-8 in a private LOCPATH (the machine need not have it installed)."""
    if not shutil.which("localedef") or not Path("/usr/share/i18n/locales/fi_FI").exists():
        pytest.skip("localedef or the fi_FI locale source is missing")
    root = tmp_path / "locales"
    root.mkdir()
    done = subprocess.run(["localedef", "-i", "fi_FI", "-f", "UTF-8", str(root / "fi_FI.UTF-8")], capture_output=True)
    if not (root / "fi_FI.UTF-8").exists():
        pytest.skip(f"localedef failed: {done.stderr.decode(errors='replace')}")
    return root


def test_delimiter_follows_the_locale_unless_asked(db, tmp_path, monkeypatch):
    emessi("codebook", "import", Path(__file__).resolve().parent.parent / "configs" / "codebook_example.yaml", "--db", db)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    emessi("export", "table", "talk_per_participant", tmp_path / "c.csv", "--db", db)
    assert (tmp_path / "c.csv").read_bytes()[3:].startswith(b"recording_id,")
    monkeypatch.setenv("LOCPATH", str(_finnish_locale(tmp_path)))
    monkeypatch.setenv("LC_ALL", "fi_FI.UTF-8")
    emessi("export", "table", "talk_per_participant", tmp_path / "fi.csv", "--db", db)
    emessi("coding", "export", "--coder", "anna", "--out", tmp_path / "fi-sheet.csv", "--db", db)
    emessi("export", "table", "talk_per_participant", tmp_path / "asked.csv", "--delimiter", ",", "--db", db)
    for name in ("fi.csv", "fi-sheet.csv"):
        assert (tmp_path / name).read_bytes().startswith(codecs.BOM_UTF8)
        assert ";" in (tmp_path / name).read_text(encoding="utf-8-sig").splitlines()[0], name
    assert (tmp_path / "asked.csv").read_bytes()[3:].startswith(b"recording_id,")
    # Every dialect reads back the same rows (DuckDB, told the dialect, as R's read.csv2 would be).
    con = duckdb.connect()
    fi = con.execute(f"SELECT * FROM read_csv('{tmp_path / 'fi.csv'}', delim=';', decimal_separator=',') ORDER BY ALL").fetchall()
    c = con.execute(f"SELECT * FROM read_csv('{tmp_path / 'c.csv'}') ORDER BY ALL").fetchall()
    assert fi == c and len(c) > 0


def test_export_table_to_xlsx_with_a_finnish_recording_name(finnish, tmp_path):
    db = finnish
    target = tmp_path / "utterances.xlsx"
    emessi("export", "table", "utterances", target, "--db", db)
    sheet = load_workbook(target, read_only=True)["utterances"]
    rows = list(sheet.iter_rows(values_only=True))
    header, body = rows[0], rows[1:]
    expected = read(db, "SELECT observation_id, recording_name, start_s, text FROM utterances ORDER BY observation_id")
    got = sorted((r[header.index("observation_id")], r[header.index("recording_name")], r[header.index("start_s")],
                  r[header.index("text")]) for r in body)  # fmt: skip
    assert got == expected and NAME in {r[1] for r in got}
    assert "participant_name" not in header and not any("Äijä" in str(v) for r in body for v in r)
    assert target.stat().st_mode & 0o077 == 0  # the CLI writes private files
    result = emessi("export", "table", "utterances", tmp_path / "x.ods", "--db", db, code=Exit.USAGE)
    assert "x.ods: write .parquet, .csv or .xlsx" in result.output


def _code(db, tmp_path) -> list[str]:
    """anna codes every demo observation, 'Äiti Ö' every other one."""
    ids = [r[0] for r in read(db, "SELECT observation_id FROM utterances WHERE recording_name = ? ORDER BY seq", [NAME])]
    for coder, step in (("anna", 1), ("Äiti Ö", 2)):
        rows = [{"observation_id": o, "aihe": "työaika;hyvinvointi" if i % 3 == 0 else "muu",
                 "tehtävä": "kysymys" if i % 2 else "kokemus"} for i, o in enumerate(ids) if i % step == 0]  # fmt: skip
        emessi("coding", "import", _save(rows, tmp_path / "c.csv", "utf-8", ","), "--coder", coder, "--new-coder", "--db", db)
    return ids


def _expected(ids: list[str]) -> dict:
    wanted = {}
    for i, o in enumerate(ids):
        for coder, step in (("anna", 1), ("Äiti Ö", 2)):
            coded = i % step == 0
            wanted[(o, f"tehtävä_{coder}")] = ("kysymys" if i % 2 else "kokemus") if coded else None
            wanted[(o, f"aihe_{coder}")] = ("työaika;hyvinvointi" if i % 3 == 0 else "muu") if coded else None
            wanted[(o, f"aihe_työaika_{coder}")] = (1 if i % 3 == 0 else 0) if coded else None
            wanted[(o, f"aihe_muu_{coder}")] = (0 if i % 3 == 0 else 1) if coded else None
    return wanted


def test_wide_coded_dataset_in_xlsx_csv_parquet_and_spss(finnish, tmp_path):
    db = finnish
    ids = _code(db, tmp_path)
    wanted = _expected(ids)
    total = read(db, "SELECT count(*) FROM utterances")[0][0]
    for suffix in ("xlsx", "csv", "parquet", "sav"):
        result = emessi("export", "coded", tmp_path / f"coded.{suffix}", "--delimiter", ";", "--db", db)
        assert f"{total} observations" in result.output and "anna, Äiti Ö" in result.output

    book = load_workbook(tmp_path / "coded.xlsx", read_only=True)
    rows = list(book["coded"].iter_rows(values_only=True))
    header = list(rows[0])
    assert header[:14] == ["observation_id", "recording", "recording_id", "group", "session", "session_date", "seq",
                           "start_s", "end_s", "duration_s", "speaker_label", "participant", "role", "text"]  # fmt: skip
    assert "participant_name" not in header
    by_id = {r[0]: dict(zip(header, r)) for r in rows[1:]}
    assert len(by_id) == total
    for (o, column), value in wanted.items():
        assert by_id[o][column] == value, (o, column)
    assert by_id[ids[0]]["recording"] == NAME and by_id[ids[0]]["group"] == "G1" and by_id[ids[0]]["session"] == 3
    labels = dict(list(book["variables"].iter_rows(values_only=True))[1:])
    assert labels["tehtävä_anna"] == "Puheenvuoron tehtävä (anna)" and labels["aihe_työaika_Äiti Ö"] == "Aihe: Työaika (Äiti Ö)"

    with open(tmp_path / "coded.csv", newline="", encoding="utf-8-sig") as handle:
        csv_rows = {r["observation_id"]: r for r in csv.DictReader(handle, delimiter=";")}
    assert (tmp_path / "coded.csv").read_bytes().startswith(codecs.BOM_UTF8)
    for (o, column), value in wanted.items():
        assert csv_rows[o][column] == ("" if value is None else str(value)), (o, column)
    assert "," in csv_rows[ids[1]]["start_s"]

    table = pq.read_table(tmp_path / "coded.parquet")
    assert table.schema.field("aihe_muu_anna").metadata[b"label"].decode() == "Aihe: Muu (å) (anna)"
    data = {r["observation_id"]: r for r in table.to_pylist()}
    for (o, column), value in wanted.items():
        assert data[o][column] == value, (o, column)

    frame, meta = pyreadstat.read_sav(str(tmp_path / "coded.sav"))
    names = list(frame.columns)
    assert all(n.isascii() and n[0].isalpha() and len(n.encode()) <= 64 for n in names)
    assert len({n.upper() for n in names}) == len(names)
    assert {"tehtava_anna", "tehtava_Aiti_O", "aihe_tyoaika_Aiti_O"} <= set(names)
    assert meta.column_names_to_labels["tehtava_Aiti_O"] == "Puheenvuoron tehtävä (Äiti Ö)"
    assert meta.variable_value_labels["tehtava_anna"] == {1.0: "Kysymys", 2.0: "Kokemuksen jakaminen"}
    assert meta.variable_value_labels["aihe_tyoaika_anna"] == {0.0: "not given", 1.0: "given"}
    spss = {r["observation_id"]: r for r in frame.to_dict("records")}
    number = {"kysymys": 1, "kokemus": 2}
    for i, o in enumerate(ids):
        assert spss[o]["tehtava_anna"] == number["kysymys" if i % 2 else "kokemus"]
        assert spss[o]["aihe_tyoaika_anna"] == (1 if i % 3 == 0 else 0)
        assert spss[o]["recording"] == NAME
        if i % 2:
            assert spss[o]["tehtava_Aiti_O"] != spss[o]["tehtava_Aiti_O"]  # not coded: system-missing

    result = emessi("export", "coded", tmp_path / "x.sav", "--coder", "nobody", "--db", db, code=Exit.USAGE)
    assert "no codings by nobody" in result.output and "anna" in result.output
    one = emessi("export", "coded", tmp_path / "anna.parquet", "--coder", "anna", "--recording", NAME, "--db", db)
    assert "1 coder(s): anna" in one.output
    assert not [c for c in pq.read_table(tmp_path / "anna.parquet").column_names if c.endswith("Äiti Ö")]


def test_spss_names_are_valid_and_unique():
    from emessi_pipeline.dataset.exports.wide import spss_names

    names = spss_names(["työ aika", "TYÖ_AIKA", "2nd", "with", "x" * 80, "x" * 80 + "y", "ä"])
    assert names["työ aika"] == "tyo_aika" and names["TYÖ_AIKA"] == "TYO_AIKA_2"
    assert names["2nd"] == "v_2nd" and names["with"] == "v_with" and names["ä"] == "a"
    assert len(names["x" * 80]) == 64 and names["x" * 80 + "y"] != names["x" * 80]
    assert all(len(n) <= 64 for n in names.values())


def test_transcript_docx_and_markdown_with_codes_beside_the_turns(finnish, tmp_path):
    db = finnish
    ids = _code(db, tmp_path)
    written = emessi("export", "transcript", NAME, "--format", "docx", "--coder", "anna", "--coder", "Äiti Ö",
                     "--out", tmp_path, "--db", db).output  # fmt: skip
    target = tmp_path / f"{NAME}.docx"
    assert str(target) in written
    doc = Document(str(target))
    assert doc.paragraphs[0].text == NAME
    turns = doc.tables[1]
    assert [c.text for c in turns.rows[0].cells] == ["time", "speaker", "text", "anna", "Äiti Ö"]
    lines = read(db, "SELECT coalesce(participant_id, speaker_label), text FROM utterances WHERE recording_name = ? ORDER BY seq", [NAME])
    body = [[c.text for c in row.cells] for row in turns.rows[1:]]
    assert [(r[1], r[2]) for r in body] == lines
    assert body[0][3] == "aihe: työaika, hyvinvointi; tehtävä: kokemus" and body[1][3] == "aihe: muu; tehtävä: kysymys"
    assert body[1][4] == "" and body[2][4] == "aihe: muu; tehtävä: kokemus"
    assert not any("Äijä" in cell for row in body for cell in row)  # names only with --with-names
    assert len(body) == len(ids)

    emessi("export", "transcript", NAME, "--coder", "anna", "--out", tmp_path, "--db", db)
    md = (tmp_path / f"{NAME}.md").read_text(encoding="utf-8")
    assert md.count("> *anna: ") == len(ids) and "> *anna: aihe: työaika, hyvinvointi; tehtävä: kokemus*" in md
    result = emessi("export", "transcript", NAME, "--format", "docx", "--coder", "nobody", "--out", tmp_path, "--db", db, code=Exit.USAGE)
    assert "no codings by nobody" in result.output
