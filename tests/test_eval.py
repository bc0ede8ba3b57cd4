"""`emessi eval`: reference readers, Finnish number normalisation, every metric on known cases,
and the command on the real dataset (the Finnish demo meeting and an AMI clip, ingested once)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from emessi_pipeline.runs.demo import ReferenceTurn, write_references
from emessi_pipeline.evaluation.evaluate import EvalOptions, Evaluation, Hypothesis, HypothesisWord, score
from emessi_pipeline.evaluation.metrics import match_boundaries, speaker_changes, word_error_rate
from emessi_pipeline.evaluation.normalize import finnish_number, normalize_text
from emessi_pipeline.evaluation.references import Reference, ReferenceFileError, Span, match_references, read_reference, read_uem, reference_files

from .conftest import shared
from .dataset_fixtures import AMI, DEMO, dataset_base, db, emessi  # noqa: F401


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _spans(reference: Reference) -> list[tuple]:
    return [(round(s.start, 3), round(s.end, 3), s.speaker, s.text) for s in reference.spans]


# --- readers ------------------------------------------------------------------------------


def test_rttm_and_stm_read_the_shared_sample():
    rttm = read_reference(shared("pyannote_sample", "sample.rttm"))
    assert rttm.format == "rttm" and len(rttm.spans) == 10 and not rttm.has_text and rttm.has_speakers
    assert _spans(rttm)[0] == (6.69, 7.12, "speaker90", None)
    stm = read_reference(shared("pyannote_sample", "sample.stm"))
    assert stm.format == "stm" and len(stm.spans) == 13 and stm.speakers == ["Diane", "Sheila"]
    assert _spans(stm)[0] == (6.68, 7.16, "Diane", "Hello?")
    assert stm.spans[-1].text == "Oh, I don't hear that in New Jersey now."


def test_stm_comments_labels_and_ignored_segments(tmp_path):
    path = _write(tmp_path, "m.stm", ";; a comment\n"
                  "m 1 Anna 0.0 1.5 <o,f0,female> Hyvää huomenta\n"
                  "m 1 excluded 1.5 2.0 ignore_time_segment_in_scoring\n"
                  "m 1 Ville 2.0 3.25 Kiitos\n")  # fmt: skip
    assert _spans(read_reference(path)) == [(0.0, 1.5, "Anna", "Hyvää huomenta"), (2.0, 3.25, "Ville", "Kiitos")]


def test_webvtt_voices_continuations_and_shared_cues(tmp_path):
    path = _write(tmp_path, "m.vtt", "WEBVTT - kokous\n\nNOTE written by hand\n\n"
                  "1\n00:00:01.000 --> 00:00:03.000 align:start\n<v Anna Virtanen>Hyvää huomenta.</v>\n\n"
                  "00:03.500 --> 00:05.000\njatkan vielä\n\n"
                  "00:05.000 --> 00:07.000\n<v.loud Ville>Kiitos</v>\n<v Anna Virtanen>Ole hyvä</v>\n")  # fmt: skip
    reference = read_reference(path)
    assert _spans(reference) == [
        (1.0, 3.0, "Anna Virtanen", "Hyvää huomenta."),
        (3.5, 5.0, "Anna Virtanen", "jatkan vielä"),  # no name: the previous cue's speaker goes on
        (5.0, 5.857, "Ville", "Kiitos"),  # two voices in one cue share its 2 s by length: 6 and 8 letters
        (5.857, 7.0, "Anna Virtanen", "Ole hyvä"),
    ]
    assert reference.has_speakers and reference.has_text


def test_srt_colon_and_bracket_names(tmp_path):
    path = _write(tmp_path, "m.srt", "1\n00:00:00,500 --> 00:00:02,000\nAnna: Tervetuloa kaikki.\n\n"
                  "2\n00:00:02,000 --> 00:00:04,000\n[Ville] Kiitos, mukava olla.\n\n"
                  "3\n00:00:04,000 --> 00:00:05,000\nKello on 12.30: aloitetaan\n")  # fmt: skip
    assert _spans(read_reference(path)) == [
        (0.5, 2.0, "Anna", "Tervetuloa kaikki."),
        (2.0, 4.0, "Ville", "Kiitos, mukava olla."),
        (4.0, 5.0, "Ville", "Kello on 12.30: aloitetaan"),  # not a name (digits): Ville goes on
    ]


def test_subtitles_without_names_have_text_but_no_speakers(tmp_path):
    reference = read_reference(_write(tmp_path, "m.srt", "1\n00:00:00,000 --> 00:00:01,000\nHei vaan\n"))
    assert reference.has_text and not reference.has_speakers and reference.spans[0].speaker is None


def test_csv_tsv_and_json_rows(tmp_path):
    csv_ref = read_reference(_write(tmp_path, "a.csv", "Start,End,Speaker,Text\n0.5,1.25,Anna,\"Hei, kaikki\"\n00:01:02.5,63,Ville,Moi\n"))
    assert _spans(csv_ref) == [(0.5, 1.25, "Anna", "Hei, kaikki"), (62.5, 63.0, "Ville", "Moi")]
    tsv_ref = read_reference(_write(tmp_path, "b.tsv", "start\tend\tspeaker\n0\t1\tAnna\n"))
    assert _spans(tsv_ref) == [(0.0, 1.0, "Anna", None)] and not tsv_ref.has_text
    json_ref = read_reference(_write(tmp_path, "c.json", json.dumps({"segments": [{"start": 2, "end": 3, "speaker": "A"}]})))
    assert _spans(json_ref) == [(2.0, 3.0, "A", None)]


def test_the_demo_reference_json_reads_as_written(tmp_path):
    turns = [ReferenceTurn("leader", 1.0, 4.5, "Tervetuloa kaikki."), ReferenceTurn("aino", 5.1, 8.0, "Kiitos.")]
    write_references(tmp_path, "meeting", turns)
    reference = read_reference(tmp_path / "meeting.reference.json")
    assert _spans(reference) == [(t.start, t.end, t.speaker, t.text) for t in turns]
    assert _spans(read_reference(tmp_path / "meeting.rttm")) == [(t.start, t.end, t.speaker, None) for t in turns]


@pytest.mark.parametrize("fmt", ["vtt", "srt", "csv", "json"])
def test_the_shared_stm_survives_a_round_trip_through_every_text_format(tmp_path, fmt):
    from emessi_pipeline.dataset.common import clock

    original = read_reference(shared("pyannote_sample", "sample.stm"))
    spans = original.spans
    if fmt == "vtt":
        body = "WEBVTT\n\n" + "".join(f"{clock(s.start)} --> {clock(s.end)}\n<v {s.speaker}>{s.text}\n\n" for s in spans)
    elif fmt == "srt":
        body = "".join(f"{i}\n{clock(s.start, ',')} --> {clock(s.end, ',')}\n{s.speaker}: {s.text}\n\n" for i, s in enumerate(spans, 1))
    elif fmt == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["start", "end", "speaker", "text"])
        writer.writerows([s.start, s.end, s.speaker, s.text] for s in spans)
        body = buffer.getvalue()
    else:
        body = json.dumps([{"start": s.start, "end": s.end, "speaker": s.speaker, "text": s.text} for s in spans])
    assert _spans(read_reference(_write(tmp_path, f"sample.{fmt}", body))) == _spans(original)


def test_the_shared_rttm_survives_a_round_trip_through_csv(tmp_path):
    original = read_reference(shared("pyannote_sample", "sample.rttm"))
    body = "start,end,speaker\n" + "".join(f"{s.start},{s.end},{s.speaker}\n" for s in original.spans)
    assert _spans(read_reference(_write(tmp_path, "sample.csv", body))) == _spans(original)


def test_unknown_formats_and_bad_lines_are_named(tmp_path):
    with pytest.raises(ReferenceFileError, match="unknown reference format '.txt'"):
        read_reference(_write(tmp_path, "m.txt", "hello"))
    with pytest.raises(ReferenceFileError, match=r"m\.rttm:2: .*8 or more fields"):
        read_reference(_write(tmp_path, "m.rttm", "SPEAKER m 1 0.0 1.0 <NA> <NA> A <NA> <NA>\nSPEAKER m 1 2.0\n"))
    with pytest.raises(ReferenceFileError, match="row 1: missing speaker"):
        read_reference(_write(tmp_path, "m.csv", "start,end,text\n0,1,hei\n"))
    with pytest.raises(ReferenceFileError, match="not a time"):
        read_reference(_write(tmp_path, "m.stm", "m 1 A zero 1.0 hei\n"))


def test_uem_regions_and_matching_files_to_recordings(tmp_path):
    assert read_uem(_write(tmp_path, "r.uem", ";; scored\nG1_S3 1 0.0 30.0\nG1_S3 1 60 90.5\nG2 1 5 6\n")) == {
        "G1_S3": [(0.0, 30.0), (60.0, 90.5)], "G2": [(5.0, 6.0)]}  # fmt: skip
    for name in ("G1_S3.rttm", "G1_S3.reference.json", "G1_S3_extra.stm", "notes.txt", "other.csv"):
        _write(tmp_path, name, "")
    files = reference_files(tmp_path)
    assert [f.name for f in files] == ["G1_S3.reference.json", "G1_S3.rttm", "G1_S3_extra.stm", "other.csv", "r.uem"]
    matched, unmatched = match_references(["G1_S3", "G1_S3_extra"], [f for f in files if f.suffix != ".uem"])
    assert {k: [p.name for p in v] for k, v in matched.items()} == {
        "G1_S3": ["G1_S3.reference.json", "G1_S3.rttm"], "G1_S3_extra": ["G1_S3_extra.stm"]}  # fmt: skip
    assert [p.name for p in unmatched] == ["other.csv"]


# --- normalisation ------------------------------------------------------------------------


@pytest.mark.parametrize("number, words", [
    (0, "nolla"), (1, "yksi"), (7, "seitsemän"), (10, "kymmenen"), (11, "yksitoista"), (19, "yhdeksäntoista"),
    (20, "kaksikymmentä"), (21, "kaksikymmentäyksi"), (99, "yhdeksänkymmentäyhdeksän"), (100, "sata"),
    (101, "satayksi"), (115, "sataviisitoista"), (200, "kaksisataa"), (1000, "tuhat"), (1001, "tuhatyksi"),
    (1990, "tuhatyhdeksänsataayhdeksänkymmentä"), (2024, "kaksituhattakaksikymmentäneljä"),
    (21000, "kaksikymmentäyksituhatta"), (100000, "satatuhatta"),
    (999999, "yhdeksänsataayhdeksänkymmentäyhdeksäntuhattayhdeksänsataayhdeksänkymmentäyhdeksän"),
])  # fmt: skip
def test_finnish_number_words(number, words):
    assert finnish_number(number) == words


def test_finnish_numbers_are_distinct_and_bounded():
    spelled = [finnish_number(n) for n in range(0, 1_000_000, 37)]
    assert len(set(spelled)) == len(spelled)
    with pytest.raises(ValueError):
        finnish_number(1_000_000)


def test_normalisation_writes_out_finnish_numbers_only_for_finnish():
    text = "Vuonna 1990 meitä oli 20, nyt 10 000 – eli 3,5 % ja 1990-luvulla 1234567!"
    assert normalize_text(text, "fi") == ("vuonna tuhatyhdeksänsataayhdeksänkymmentä meitä oli kaksikymmentä nyt "
                                          "kymmenentuhatta eli kolme pilkku viisi prosenttia ja "
                                          "tuhatyhdeksänsataayhdeksänkymmentä luvulla 1234567")  # fmt: skip
    assert normalize_text("In 1990 we were 20.", "en") == normalize_text("In 1990 we were 20.") == "in 1990 we were 20"
    assert normalize_text("Hyvää Päivää, Åsa! Työ-aika_", "fi") == "hyvää päivää åsa työ aika"
    assert word_error_rate("Meitä oli kaksikymmentä.", "meitä oli 20", language="fi") == 0.0
    assert word_error_rate("Meitä oli kaksikymmentä.", "meitä oli 20") == pytest.approx(1 / 3)


# --- metrics on known cases ---------------------------------------------------------------


def _hypothesis(spans, shift: float = 0.0, relabel=None, language="en") -> Hypothesis:
    """What a perfect system would output for *spans*: their turns, one observation each, and
    their words spread evenly over them; optionally shifted in time and with other labels."""
    relabel = relabel or {}
    words, observations = [], []
    for seq, s in enumerate(spans, 1):
        speaker = relabel.get(s.speaker, s.speaker)
        tokens = (s.text or "").split()
        step = (s.end - s.start) / max(len(tokens), 1)
        words += [HypothesisWord(s.start + shift + i * step, s.start + shift + (i + 1) * step, t, speaker, seq)
                  for i, t in enumerate(tokens)]  # fmt: skip
        observations.append(Span(s.start + shift, s.end + shift, speaker, s.text))
    turns = tuple(Span(s.start + shift, s.end + shift, relabel.get(s.speaker, s.speaker)) for s in spans)
    return Hypothesis(tuple(words), tuple(observations), turns, language)


@pytest.fixture(scope="module")
def stm() -> Reference:
    return read_reference(shared("pyannote_sample", "sample.stm"))


def test_a_perfect_hypothesis_scores_zero_errors_everywhere(stm):
    result = score("sample", [stm], _hypothesis(stm.spans, relabel={"Diane": "SPEAKER_00", "Sheila": "SPEAKER_01"}))
    assert result.text.wer == result.text.cer == 0.0 and result.text.reference_words == 87
    d = result.diarization
    assert d.der == d.missed == d.false_alarm == d.confusion == d.jer == 0.0 and d.total_s > 20
    assert result.speaker_words.cpwer == result.speaker_words.wrong_speaker_share == 0.0
    assert result.speaker_mapping == {"SPEAKER_00": "Diane", "SPEAKER_01": "Sheila"}
    b = result.boundaries
    assert b.reference == b.hypothesis == b.matched == 8 and b.precision == b.recall == b.f1 == 1.0


def test_a_hypothesis_one_second_late_loses_time_and_boundaries(stm):
    result = score("sample", [stm], _hypothesis(stm.spans, shift=1.0))
    assert result.text.wer == 0.0  # the words are right; only their times moved
    assert result.diarization.der > 0.1 and result.diarization.missed > 0 and result.diarization.false_alarm > 0
    assert result.diarization.jer > 0.1
    # Short turns: a few late boundaries land near the next true one, most find none.
    assert result.boundaries.recall < 0.5 and result.boundaries.precision < 0.5
    assert score("sample", [stm], _hypothesis(stm.spans, shift=1.0), EvalOptions(tolerance=1.0)).boundaries.recall == 1.0


def test_words_given_to_the_wrong_speaker_raise_cpwer_but_not_wer(stm):
    swapped = [replace(s, speaker="Sheila" if s.speaker == "Diane" else "Diane") if i == 0 else s for i, s in enumerate(stm.spans)]
    result = score("sample", [stm], _hypothesis(swapped))
    assert result.text.wer == 0.0
    # The first span ("Hello?", Diane's) went to Sheila: one deletion and one insertion for cpWER.
    assert result.speaker_words.errors == 2 and result.speaker_words.cpwer == pytest.approx(2 / 87)
    assert result.speaker_words.wrong_speaker_words == 1
    assert result.speaker_words.wrong_speaker_share == pytest.approx(1 / 87)
    assert result.diarization.confusion > 0


def test_a_window_scores_only_inside_it(stm):
    hypothesis = _hypothesis(stm.spans[:6])  # the hypothesis stops at 12.54 s
    whole = score("sample", [stm], hypothesis)
    early = score("sample", [stm], hypothesis, regions=[(0.0, 12.54)])
    assert whole.text.deletions > 0 and whole.diarization.missed > 0
    assert early.text.wer == 0.0 and early.diarization.der == 0.0 and early.boundaries.recall == 1.0
    assert early.text.reference_words == 24 < whole.text.reference_words and early.boundaries.reference == 4


def test_collar_and_skipped_overlap_forgive_what_they_should():
    reference = Reference(Path("r.rttm"), "rttm", (Span(0, 10, "A"), Span(10, 20, "B"), Span(12, 13, "A")))
    late = _hypothesis([Span(0, 10.2, "A"), Span(10.2, 20, "B")])
    assert score("r", [reference], late).diarization.der > 0
    assert score("r", [reference], late, EvalOptions(collar=0.5, skip_overlap=True)).diarization.der == 0.0


def test_speaker_changes_ignore_a_backchannel_inside_a_turn():
    spans = [Span(0, 5, "A"), Span(5.5, 9, "A"), Span(6, 6.5, "B"), Span(9.2, 12, "B"), Span(11.5, 15, "A")]
    assert speaker_changes(spans) == [9.2, 11.5]


def test_boundary_matching_is_one_to_one():
    assert match_boundaries([10.0], [9.8, 10.1], 0.5) == 1
    assert match_boundaries([10.0, 10.4], [10.2], 0.5) == 1
    assert match_boundaries([1.0, 1.5], [1.4, 1.9], 0.5) == 2  # closest-first would pair 1.5-1.4 and lose one
    assert match_boundaries([1.0, 2.0, 3.0], [1.4, 2.6, 3.1], 0.5) == 2
    assert match_boundaries([1.0], [1.6], 0.5) == 0


def test_overall_scores_pool_counts_not_means(stm):
    perfect = score("a", [stm], _hypothesis(stm.spans))
    no_words = score("b", [Reference(Path("b.json"), "json", (Span(0, 1, "A", "yksi kaksi kolme"),))],
                     _hypothesis([Span(0, 1, "A", "")]))  # fmt: skip
    overall = Evaluation((perfect, no_words), EvalOptions()).overall
    assert no_words.text.wer == 1.0
    assert overall["text"].wer == pytest.approx(3 / 90)  # not (0 + 1) / 2
    assert overall["diarization"].total_s == pytest.approx(perfect.diarization.total_s + 1.0)


def test_timeline_only_references_give_no_word_scores_and_say_why():
    reference = Reference(Path("r.rttm"), "rttm", (Span(0, 1, "A"),))
    result = score("r", [reference], _hypothesis([Span(0, 1, "A", "hei")]))
    assert result.text is None and result.speaker_words is None and result.diarization.der == 0.0
    assert any("no word error" in n for n in result.notes)


# --- the command on the real dataset ------------------------------------------------------


@pytest.fixture
def references(dataset_base, tmp_path) -> Path:
    """The demo's RTTM and reference JSON, the AMI clip's official RTTM under the recording's
    name with a UEM for its first 30 s, and one file that names no recording."""
    folder = tmp_path / "references"
    folder.mkdir()
    demo_refs = dataset_base.demo_source.parent.parent / "references"
    for suffix in (".rttm", ".reference.json"):
        shutil.copy(demo_refs / f"{DEMO}{suffix}", folder)
    shutil.copy(shared("ami", "trn07.rttm"), folder / f"{AMI}.rttm")
    _write(folder, f"{AMI}.uem", f"{AMI} 1 0.0 30.0\n")
    _write(folder, "elsewhere.rttm", "SPEAKER elsewhere 1 0.0 1.0 <NA> <NA> A <NA> <NA>\n")
    return folder


@pytest.mark.slow
def test_eval_json_scores_both_recordings_of_the_dataset(db, references):
    data = json.loads(emessi("eval", "--db", db, "--references", references, "--json").stdout)
    by_name = {r["recording"]: r for r in data["recordings"]}
    assert set(by_name) == {DEMO, AMI}
    demo, ami = by_name[DEMO], by_name[AMI]
    # Measured on the demo: WER 0.65, CER 0.17, DER 0.06, every speaker change found.
    assert demo["language"] == "fi" and demo["text_reference"].endswith(".reference.json")
    assert demo["timeline_reference"].endswith(".rttm")
    assert 0 < demo["text"]["wer"] < 0.8 and 0 < demo["text"]["cer"] < 0.25 and demo["text"]["reference_words"] == 88
    assert 0 < demo["diarization"]["der"] < 0.2 and 0 <= demo["diarization"]["jer"] < 0.3
    assert demo["speaker_words"]["cpwer"] >= demo["text"]["wer"] and demo["speaker_words"]["wrong_speaker_share"] < 0.2
    assert sorted(demo["speaker_mapping"].values()) == ["aino", "facilitator", "leader", "mikko"]
    assert demo["boundaries"]["reference"] == 9 and demo["boundaries"]["recall"] >= 0.7
    # The AMI clip: an RTTM only, scored over the UEM's 0-30 s.
    assert ami["regions"] == [[0.0, 30.0]] and ami["text"] is None and ami["speaker_words"] is None
    assert 0 < ami["diarization"]["der"] < 0.9 and ami["diarization"]["total_s"] <= 30.0
    overall = data["overall"]
    total = demo["diarization"]["total_s"] + ami["diarization"]["total_s"]
    assert overall["diarization"]["total_s"] == pytest.approx(total, abs=1e-3)
    assert overall["text"]["wer"] == pytest.approx(demo["text"]["wer"], abs=1e-6)
    assert overall["boundaries"]["reference"] == demo["boundaries"]["reference"] + ami["boundaries"]["reference"]
    assert data["unmatched_references"] == [str(references / "elsewhere.rttm")]
    assert data["options"]["collar"] == 0.0 and data["options"]["skip_overlap"] is False


@pytest.mark.slow
def test_eval_of_a_shifted_reference_is_worse_and_the_table_names_the_metrics(db, references, tmp_path):
    name = DEMO
    base = emessi("eval", name, "--db", db, "--reference", references / f"{name}.rttm", "--json")
    rttm = read_reference(references / f"{name}.rttm")
    shifted = "".join(f"SPEAKER x 1 {s.start + 1:.3f} {s.end - s.start:.3f} <NA> <NA> {s.speaker} <NA> <NA>\n" for s in rttm.spans)
    moved = emessi("eval", name, "--db", db, "--reference", _write(tmp_path, "late.rttm", shifted), "--json")
    before, after = json.loads(base.stdout)["recordings"][0], json.loads(moved.stdout)["recordings"][0]
    assert after["diarization"]["der"] > before["diarization"]["der"] + 0.1
    assert after["boundaries"]["recall"] < before["boundaries"]["recall"]
    table = emessi("eval", name, "--db", db, "--reference", references / f"{name}.rttm",
                   "--reference", references / f"{name}.reference.json", "--collar", "0.25").stdout  # fmt: skip
    for heading in ("WER", "CER", "cpWER", "DER", "JER", "miss", "conf", "F1", "collar 0.25 s", name):
        assert heading in table


@pytest.mark.slow
def test_eval_usage_errors_exit_2(db, references, tmp_path):
    assert "give reference files" in emessi("eval", "--db", db, code=2).output
    assert "unknown reference format" in emessi("eval", DEMO, "--db", db, "--reference", _write(tmp_path, "x.txt", "x"), code=2).output
    assert "no recording 'nosuch'" in emessi("eval", "nosuch", "--db", db, "--reference", references / f"{DEMO}.rttm", code=2).output
    assert "matches a recording" in emessi("eval", "--db", db, "--reference", references / "elsewhere.rttm", code=2).output
    assert "either --window or --uem" in emessi("eval", "--db", db, "--references", references, "--window", "0", "5",
                                                "--uem", references / f"{AMI}.uem", code=2).output  # fmt: skip
    assert "no such database" in emessi("eval", "--db", tmp_path / "none.duckdb", "--references", references, code=2).output
