"""Recording metadata from a manifest (CSV or YAML) or from file names."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from emessi_pipeline.config import load_profile
from emessi_pipeline.runs.manifest import ManifestError, find_manifest, from_filename, metadata_for, read_manifest


def test_csv_manifest_rows_blank_cells_and_lookup_by_relative_path(tmp_path):
    (tmp_path / "G2").mkdir()
    (tmp_path / "manifest.csv").write_text(
        "file,group,session,date,speakers,min_speakers,max_speakers\n"
        "G2/meeting 1.mp4,G2,1,2024-03-05,7,,\n"
        "kokous.m4a,G3,,,,4,9\n"
    )
    table = read_manifest(find_manifest(tmp_path))
    first = metadata_for(tmp_path / "G2" / "meeting 1.mp4", tmp_path, table, None)
    assert (first.group, first.session, first.date, first.speakers) == ("G2", 1, dt.date(2024, 3, 5), 7)
    second = metadata_for(tmp_path / "kokous.m4a", tmp_path, table, None)
    assert (second.session, second.speakers, second.min_speakers, second.max_speakers) == (None, None, 4, 9)
    assert metadata_for(tmp_path / "other.mp4", tmp_path, table, None).group is None


def test_yaml_manifest_and_a_bad_row_named_with_its_line(tmp_path):
    good = tmp_path / "manifest.yaml"
    good.write_text("recordings:\n  - {file: a.mp4, group: G1, session: 2, speakers: 5}\n")
    assert read_manifest(good)["a.mp4"].speakers == 5
    bad = tmp_path / "bad.csv"
    bad.write_text("file,session\nx.mp4,kolmas\n")
    with pytest.raises(ManifestError, match=r"bad.csv: row 2 \(x.mp4\): session"):
        read_manifest(bad)


def test_file_name_pattern_from_the_profile():
    profile = load_profile("default", {"metadata.filename_pattern": r"(?P<group>G\d+)_S(?P<session>\d+)"})
    meta = from_filename(Path("G4_S06_zoom.mp4"), profile.metadata.filename_pattern)
    assert (meta.group, meta.session) == ("G4", 6)
    assert from_filename(Path("random.mp4"), profile.metadata.filename_pattern).group is None


def test_profiles_validate_and_reject_unknown_keys(tmp_path):
    for name in ("default", "workstation", "nightly"):
        assert load_profile(name).name == name
    bad = tmp_path / "bad.yaml"
    bad.write_text("segment:\n  max_pauze: 2\n")
    with pytest.raises(ValueError, match="max_pauze"):
        load_profile(bad)
