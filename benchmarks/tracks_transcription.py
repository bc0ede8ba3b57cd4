"""Per-participant tracks: transcribe the mix, or each track? Speaker-attributed WER (cpWER).

    nice -n 19 .venv/bin/python benchmarks/tracks_transcription.py

Two meetings with one track per speaker (every other speaker bleeding in at -30 dB), both
diarised from their tracks (stages/tracks.diarize_tracks), transcribed with the default profile's
Whisper (base, int8) two ways:

- mix: the mix transcribed once, each word given to a speaker by stages/align.align (what the
  ingest does);
- tracks: each track transcribed on its own, silenced outside its own turns (so the bleed of
  the others is not transcribed again), every word given to that track's speaker.

Meetings: the pyannote sample (real English phone speech, 30 s, reference .stm text; one short
overlap) and three espeak-ng Finnish voices whose turns are placed to overlap by OVERLAP_S
seconds each (text known). Results in docs/multitrack.md.
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

warnings.filterwarnings("ignore")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from emessi_pipeline.config import load_profile  # noqa: E402
from emessi_pipeline.evaluation.metrics import score_speaker_words  # noqa: E402
from emessi_pipeline.evaluation.normalize import normalize_text  # noqa: E402
from emessi_pipeline.evaluation.references import read_reference  # noqa: E402
from emessi_pipeline.runs.demo import synthesize  # noqa: E402
from emessi_pipeline.stages.align import align  # noqa: E402
from emessi_pipeline.stages.tracks import diarize_tracks  # noqa: E402
from emessi_pipeline.stages.transcribe import load_model, transcribe  # noqa: E402

R = 16_000
SHARED = REPO.parent / "shared" / "data"
OVERLAP_S = 1.0
BLEED = 10 ** (-30 / 20)


def cut(mix: np.ndarray, spans: dict[str, list[tuple[float, float]]]) -> dict[str, np.ndarray]:
    out = {}
    for speaker, own_spans in spans.items():
        own = np.zeros(mix.size, bool)
        for a, b in own_spans:
            own[int(a * R) : int(b * R)] = True
        out[speaker] = np.where(own, mix, BLEED * mix).astype(np.float32)
    return out


def real_meeting():
    _, x = wavfile.read(SHARED / "pyannote_sample" / "sample.wav")
    mix = x.astype(np.float32) / 32768
    ref = read_reference(SHARED / "pyannote_sample" / "sample.stm").spans
    spans: dict[str, list] = {}
    for s in ref:
        spans.setdefault(s.speaker, []).append((s.start, s.end))
    words = [(w, s.speaker) for s in ref for w in normalize_text(s.text or "", "en").split()]
    return "en", mix, cut(mix, spans), words


def finnish_meeting():
    sys.path.insert(0, str(REPO))
    from tests.test_tracks import FINNISH

    folder = Path(tempfile.mkdtemp())
    clips = []
    for number, (speaker, text) in enumerate(FINNISH["turns"]):
        wav, _ = synthesize({"speakers": FINNISH["speakers"], "turns": [[speaker, text]]}, folder,
                            name=f"turn{number}", gap=0.0, lead_in=0.0)  # fmt: skip
        samples = wavfile.read(wav)[1].astype(np.float32) / 32768
        clips.append((speaker, text, resample_poly(samples, 320, 441).astype(np.float32)))
    starts, cursor = [], 0.5
    for _, _, clip in clips:
        starts.append(cursor)
        cursor += clip.size / R - OVERLAP_S  # the next speaker starts before this one has finished
    tracks_clean = {s: np.zeros(int((cursor + OVERLAP_S + 0.5) * R), np.float32) for s in FINNISH["speakers"]}
    for (speaker, _, clip), start in zip(clips, starts):
        a = int(start * R)
        tracks_clean[speaker][a : a + clip.size] += clip
    mix = sum(tracks_clean.values())
    tracks = {s: (t + BLEED * (mix - t)).astype(np.float32) for s, t in tracks_clean.items()}
    words = [(w, speaker) for speaker, text, _ in clips for w in normalize_text(text, "fi").split()]
    return "fi", mix.astype(np.float32), tracks, words


def main() -> None:
    profile = load_profile("default")
    for name, build in (("pyannote sample (real, en)", real_meeting), ("espeak-ng Finnish, 1-s overlaps", finnish_meeting)):
        language, mix, tracks, truth = build()
        asr = profile.asr.model_copy(update={"language": language})
        model, _ = load_model(asr)
        diarization = diarize_tracks(tracks, R, profile.tracks)
        ref_tokens, ref_speakers = [w for w, _ in truth], [s for _, s in truth]
        # mix
        aligned = align(transcribe(model, mix, asr), diarization, profile.align).words
        hyp = [(t, w.speaker) for w in aligned for t in normalize_text(w.text, language).split()]
        mixed, _ = score_speaker_words(ref_tokens, ref_speakers, [t for t, _ in hyp], [s for _, s in hyp])
        # tracks
        hyp = []
        for speaker, samples in tracks.items():
            own = np.zeros(samples.size, bool)
            for turn in diarization.turns:
                if turn.speaker == speaker:
                    own[int(max(0, turn.start - 0.1) * R) : int((turn.end + 0.1) * R)] = True
            transcript = transcribe(model, np.where(own, samples, 0).astype(np.float32), asr)
            hyp += [(w.start, t, speaker) for s in transcript.segments for w in s.words
                    for t in normalize_text(w.text, language).split()]  # fmt: skip
        hyp.sort()
        per_track, _ = score_speaker_words(ref_tokens, ref_speakers, [t for _, t, _ in hyp], [s for _, _, s in hyp])
        print(json.dumps({"meeting": name, "reference_words": len(ref_tokens),
                          "mix_cpwer": round(mixed.cpwer, 3), "mix_wrong_speaker": round(mixed.wrong_speaker_share, 3),
                          "tracks_cpwer": round(per_track.cpwer, 3),
                          "tracks_wrong_speaker": round(per_track.wrong_speaker_share, 3)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
