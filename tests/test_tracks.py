"""Per-participant tracks: the layouts are recognised, who spoke when comes from the tracks (DER
against the truth the tracks were built from), and a bad track falls back to clustering."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from emessi_pipeline.cli import app
from emessi_pipeline.evaluation.metrics import diarization_error_rate
from emessi_pipeline.evaluation.references import read_rttm
from emessi_pipeline.runs.chain import recording_sha
from emessi_pipeline.runs.demo import synthesize
from emessi_pipeline.runs.workspace import ContentIndex
from emessi_pipeline.stages.records import SpeakerTurn
from emessi_pipeline.stages.tracks import find_recordings, layout_for, track_label

from .conftest import REPO, ffmpeg, shared

BLEED_DB = -30.0  # the other participants, faintly, in each microphone


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as handle:
        data = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
        return data.astype(np.float32) / 32768, handle.getframerate()


def _encode(wav: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg("-i", str(wav), "-c:a", "aac", "-b:a", "96k", str(out))
    return out


def _tracks(mix: np.ndarray, rate: int, turns: list[SpeakerTurn]) -> dict[str, np.ndarray]:
    """Each speaker's stretches of the mix at full level, everyone else's at BLEED_DB."""
    bleed = 10 ** (BLEED_DB / 20)
    out = {}
    for speaker in sorted({t.speaker for t in turns}):
        own = np.zeros(mix.size, bool)
        for t in turns:
            if t.speaker == speaker:
                own[int(t.start * rate) : int(t.end * rate)] = True
        out[speaker] = np.where(own, mix, bleed * mix)
    return out


def _write_meeting(mix: np.ndarray, rate: int, tracks: dict[str, np.ndarray], mix_path: Path | None,
                   track_dir: Path, names: dict[str, str] | None = None, scratch: Path | None = None,
                   suffix: str = ".wav") -> None:  # fmt: skip
    """WAV files as they are named; AAC (as Zoom writes) through ffmpeg for ``.m4a``."""
    scratch = scratch or track_dir.parent

    def write(samples: np.ndarray, path: Path) -> None:
        if path.suffix == ".wav":
            _write_wav(path, samples, rate)
        else:
            _encode(_write_wav(scratch / f".{path.stem}.wav", samples, rate), path)

    if mix_path is not None:
        write(mix, mix_path)
    for speaker, samples in tracks.items():
        write(samples, track_dir / f"{(names or {}).get(speaker, speaker)}{suffix}")


def _der(con, name: str, truth: list[SpeakerTurn], labels: dict[str, str] | None = None) -> float:
    rows = con.execute(
        "SELECT t.start_s, t.end_s, t.speaker_label FROM speaker_turns t JOIN recordings r "
        "ON t.set_id = r.current_set_id WHERE r.name = ? AND t.kind = 'regular'", [name]
    ).fetchall()  # fmt: skip
    assert rows, f"no turns for {name}"
    hyp = [SpeakerTurn(start=a, end=b, speaker=c) for a, b, c in rows]
    if labels:  # the labels must be the track names (or the manifest's ids) themselves: no mapping
        truth = [t.model_copy(update={"speaker": labels[t.speaker]}) for t in truth]
    assert {t.speaker for t in hyp} == {t.speaker for t in truth}
    return diarization_error_rate(truth, hyp)["der"]


FINNISH = {
    "speakers": {
        "aino": {"voice": "fi+f5", "pitch": 90, "speed": 150},
        "mikko": {"voice": "fi+m1", "pitch": 20, "speed": 145},
        "leena": {"voice": "fi+f3", "pitch": 70, "speed": 160},
    },
    "turns": [
        ["aino", "Minulla on ollut kiireinen syksy"],
        ["mikko", "Meillä järjestössä on vähän väkeä"],
        ["leena", "Muistutan, että voitte käyttää chattia"],
        ["aino", "Kirjoitan maanantaina listan"],
        ["mikko", "Hyvä vinkki, kiitos"],
    ],
}


def build_meetings(root: Path) -> tuple[Path, dict[str, list[SpeakerTurn]]]:
    """``root/recordings`` with one meeting of every layout and bad input, and the true turns."""
    rec = root / "recordings"
    truth = {}
    # Real speech: the pyannote sample's two voices cut into one track each (generic layout).
    sample, rate = _read_wav(shared("pyannote_sample", "sample.wav"))
    # 6.0–21.7 s: the first fifteen seconds of talk, ending in a pause, to keep the test short.
    turns = [SpeakerTurn(start=round(t.start - 6.0, 3), end=round(t.end - 6.0, 3), speaker=t.speaker)
             for t in read_rttm(shared("pyannote_sample", "sample.rttm")) if t.end < 21.7]  # fmt: skip
    sample = sample[6 * rate : int(21.7 * rate)]
    _write_meeting(sample, rate, _tracks(sample, rate, turns), rec / "real" / "puhelu.m4a",
                   rec / "real" / "puhelu.tracks", suffix=".m4a")  # fmt: skip
    truth["puhelu"] = turns
    # Finnish voices in the Zoom layout: mixed video and audio, and Audio Record/ named as Zoom does.
    wav, spoken = synthesize(FINNISH, root / "fi", name="fi", gap=0.5, lead_in=0.5)
    mix, rate = _read_wav(wav)
    fin = [SpeakerTurn(start=t.start, end=t.end, speaker=t.speaker) for t in spoken]
    meeting = rec / "2026-11-20 10.00.00 Vertaisryhmä 81234567890"
    zoom_names = {"aino": "audioAinoVirtanen11234567890", "mikko": "audioMikkoKorhonen21234567890",
                  "leena": "audioLeenaNieminen31234567890"}  # fmt: skip
    _write_meeting(mix, rate, _tracks(mix, rate, fin), meeting / "audio_only.m4a", meeting / "Audio Record",
                   zoom_names, scratch=root, suffix=".m4a")  # fmt: skip
    ffmpeg("-f", "lavfi", "-i", "color=size=64x64:rate=2", "-i", str(meeting / "audio_only.m4a"), "-shortest",
           "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy", str(meeting / "zoom_0.mp4"))  # fmt: skip
    truth["zoom_0"] = fin
    # The same voices as tracks only, no mix: the recording is the folder, its audio their amix.
    short = mix[: int(fin[1].end * rate) + rate // 2]
    _write_meeting(short, rate, _tracks(short, rate, fin[:2]), None, rec / "kaksi.tracks", scratch=root)
    truth["kaksi"] = fin[:2]
    # Bad tracks beside a short mix: each recording falls back to clustering with a note.
    clip = sample[int(4.5 * rate) : int(8.5 * rate)]
    halves = {"a": np.concatenate([clip[: clip.size // 2], 0 * clip[clip.size // 2 :]]),
              "b": np.concatenate([0 * clip[: clip.size // 2], clip[clip.size // 2 :]])}  # fmt: skip
    _write_meeting(clip, rate, {**halves, "b": halves["b"][: -3 * rate]}, rec / "bad" / "lyhyt.wav",
                   rec / "bad" / "lyhyt.tracks")  # fmt: skip
    _write_meeting(clip, rate, {**halves, "b": 0 * clip}, rec / "bad" / "hiljainen.wav", rec / "bad" / "hiljainen.tracks")
    _write_meeting(clip, rate, halves, rec / "bad" / "rikki.wav", rec / "bad" / "rikki.tracks")
    (rec / "bad" / "rikki.tracks" / "b.wav").write_bytes(b"not audio at all" * 64)
    # Without a mix a bad track leaves nothing to fall back on: that recording fails alone.
    _write_meeting(clip, rate, {**halves, "b": 0 * clip}, None, rec / "bad" / "yksin.tracks")
    (rec / "manifest.csv").write_text(
        "file,tracks\n"
        f"{meeting.name}/zoom_0.mp4,AinoVirtanen=P01; audioMikkoKorhonen21234567890=P02\n"
    )
    return rec, truth


@pytest.fixture(scope="module")
def meetings(tmp_path_factory):
    """Every layout and bad input, ingested by one CLI run (the models load once)."""
    root = tmp_path_factory.mktemp("tracks")
    rec, truth = build_meetings(root)
    db, work = root / "t.duckdb", root / "work"
    # Greedy decoding: the words are not what these tests check, and Whisper's fallback
    # temperatures on Finnish heard as English would take most of their time.
    profile = (REPO / "configs" / "default.yaml").read_text()
    for old, new in (("name: default", "name: greedy"), ("beam_size: 5", "beam_size: 1"),
                     ("temperature: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]", "temperature: [0.0]")):  # fmt: skip
        assert old in profile
        profile = profile.replace(old, new)
    (root / "greedy.yaml").write_text(profile)
    result = CliRunner().invoke(app, ["ingest", str(rec), "--db", str(db), "-w", str(work), "--language", "en",
                                      "--json", "--settle-seconds", "0", "--profile", str(root / "greedy.yaml")])  # fmt: skip
    return rec, db, truth, result


def test_track_files_are_not_recordings_and_both_layouts_are_recognised(meetings):
    rec, _, _, _ = meetings
    found = [p.relative_to(rec).as_posix() for p in find_recordings(rec)]
    meeting = "2026-11-20 10.00.00 Vertaisryhmä 81234567890"
    assert found == sorted([f"{meeting}/zoom_0.mp4", "bad/hiljainen.wav", "bad/lyhyt.wav", "bad/rikki.wav",
                            "bad/yksin.tracks", "kaksi.tracks", "real/puhelu.m4a"])  # fmt: skip
    zoom = layout_for(rec / meeting / "zoom_0.mp4")
    assert zoom.kind == "zoom" and [t.label for t in zoom.tracks] == ["AinoVirtanen", "LeenaNieminen", "MikkoKorhonen"]
    assert layout_for(rec / meeting / "audio_only.m4a") is None  # the video stands for the meeting
    assert layout_for(rec / "kaksi.tracks").mix is None
    assert track_label(Path("audioMikko2.m4a"), "zoom") == "audioMikko2"  # no Zoom id: the name as it is


def test_changing_a_track_changes_the_recording(meetings, tmp_path):
    rec, _, _, _ = meetings
    index = ContentIndex(tmp_path / "index.json")
    before, layout, _ = recording_sha(index, rec / "real" / "puhelu.m4a")
    assert before != index.sha256(rec / "real" / "puhelu.m4a") and len(layout.tracks) == 2
    copy = tmp_path / "real"
    (copy / "puhelu.tracks").mkdir(parents=True)
    for path in [rec / "real" / "puhelu.m4a", *(t.path for t in layout.tracks)]:
        target = copy / path.relative_to(rec / "real")
        target.write_bytes(path.read_bytes())
    assert recording_sha(index, copy / "puhelu.m4a")[0] == before
    track = copy / "puhelu.tracks" / layout.tracks[0].path.name
    track.write_bytes(track.read_bytes()[:-100])
    assert recording_sha(index, copy / "puhelu.m4a")[0] != before


def test_turns_come_from_the_tracks(meetings):
    _, db, truth, result = meetings
    summary = json.loads(result.stdout)
    by_name = {Path(r["path"]).stem: r for r in summary["results"]}
    assert summary["recordings"] == 7 and summary["failed"] == 1, result.output
    con = duckdb.connect(str(db), read_only=True)
    # Real speech: the pyannote sample's reference turns, through AAC and back (measured 0.016).
    assert _der(con, "puhelu", truth["puhelu"]) <= 0.02
    # Finnish voices, labels from the manifest where it maps them, else from Zoom's file names.
    labels = {"aino": "P01", "mikko": "P02", "leena": "LeenaNieminen"}
    assert _der(con, "zoom_0", truth["zoom_0"], labels) <= 0.02
    assert _der(con, "kaksi", truth["kaksi"]) <= 0.02
    assert by_name["kaksi"]["note"] is None and by_name["kaksi"]["duration_s"] > 5
    con.close()


def test_a_bad_track_falls_back_to_clustering_with_a_note_naming_it(meetings):
    rec, db, _, result = meetings
    by_name = {Path(r["path"]).stem: r for r in json.loads(result.stdout)["results"]}
    expected = {"lyhyt": "b.wav: 1.0 s long", "hiljainen": "b.wav: silent", "rikki": "b.wav: ffmpeg cannot read it"}
    for name, said in expected.items():
        row = by_name[name]
        assert row["status"] == "done" and row["speakers"] >= 1, row
        assert said in row["note"] and "diarised by clustering the mix instead" in row["note"]
        assert "\n" not in row["note"]
    con = duckdb.connect(str(db), read_only=True)
    kept = dict(con.execute(
        "SELECT r.name, json_extract_string(s.params, '$.tracks.note') FROM observation_sets s "
        "JOIN recordings r ON s.set_id = r.current_set_id").fetchall())  # fmt: skip
    con.close()
    assert kept["lyhyt"] == by_name["lyhyt"]["note"] and kept["puhelu"] is None
    alone = by_name["yksin"]
    assert alone["status"] == "failed" and alone["stage"] == "diarize"
    assert f"{rec}/bad/yksin.tracks/b.wav: silent" in alone["message"]
    assert "transcribe" not in alone["stage_seconds"]  # the tracks are checked before Whisper runs


def test_an_audio_record_folder_without_meeting_media_and_an_empty_track_folder_are_ordinary(tmp_path):
    for name in ("Audio Record/haastattelu.wav", "Audio Record/toinen.wav", "G1.tracks/Aino.wav", "G1.tracks/Mikko.wav"):
        _write_wav(tmp_path / name, np.zeros(1600, np.float32), 16_000)
    _write_wav(tmp_path / "G2" / "G2.wav", np.zeros(1600, np.float32), 16_000)
    (tmp_path / "G2" / "G2.tracks").mkdir()
    found = [p.relative_to(tmp_path).as_posix() for p in find_recordings(tmp_path)]
    assert found == ["Audio Record/haastattelu.wav", "Audio Record/toinen.wav", "G1.tracks", "G2/G2.wav"]
    assert layout_for(tmp_path / "G2" / "G2.wav") is None  # its track folder is empty: an ordinary recording


def test_the_manifest_maps_tracks_to_participant_ids(tmp_path):
    from emessi_pipeline.runs.manifest import ManifestError, read_manifest

    (tmp_path / "manifest.csv").write_text("file,tracks\nG1.mp4,Aino=P01; audioMikko11234567890 = P02\nG2.mp4,Aino\n")
    with pytest.raises(ManifestError, match=r"row 3 \(G2.mp4\): tracks"):
        read_manifest(tmp_path / "manifest.csv")
    (tmp_path / "manifest.csv").write_text("file,tracks\nG1.mp4,Aino=P01; audioMikko11234567890 = P02\n")
    assert read_manifest(tmp_path / "manifest.csv")["G1.mp4"].tracks == {"Aino": "P01", "audioMikko11234567890": "P02"}
