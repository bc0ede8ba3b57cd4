"""Voiceprints: how often `emessi speakers suggest` names the right participant, and how often it
takes a stranger for a known one, on the shared real speech.

    nice -n 19 .venv/bin/python benchmarks/voiceprints.py            # ~2 min on 2 busy cores
    nice -n 19 .venv/bin/python benchmarks/voiceprints.py --json out.json

Who speaks when comes from the reference RTTM turns, not from diarisation, so the numbers are
about the voiceprints alone (diarisation errors come on top; docs/accuracy.md, Diarisation).
A label's clean speech is built as in ``dataset/voiceprints.clean_stretches``: its turns less every
moment another speaker talks, in pieces of at least ``min_stretch_s``, the longest first up to
``max_speech_s``; embedded with the profile's embedder (``stages/embedding.speaker_embedder``) and
averaged with ``voiceprints.robust_mean``; labels are matched one-to-one (Hungarian) as ``suggest``
does.

Trials (enrol = the sessions a person assigned; test = the new session):
- cross-session, real: AMI clips of one person in two meetings. trn00 (EN2001a) and trn03
  (EN2001e) share MEE067 and MEO069; trn06 (EN2005a) and trn09 (EN2009b) share FEE083. Each pair
  both ways; a test speaker not in the enrolling clip is a stranger.
- split: every clip's speakers' clean speech cut in two by time, the first half enrolled, the
  second tested, with all of the clip's speakers enrolled (accuracy) and once more with each
  speaker left out of the enrolment in turn (that speaker is then a stranger: false accepts).

Reported per threshold: label accuracy (known test labels given the right participant; a label
below the threshold counts as wrong), false-accept rate (stranger labels given some participant),
and the genuine/impostor score distributions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"

CLIPS = {  # name: (wav, rttm)
    **{f"ami/{c}": (SHARED / "ami" / f"{c}.wav", SHARED / "ami" / f"{c}.rttm")
       for c in ("dev01", "trn00", "trn03", "trn04", "trn06", "trn07", "trn09")},
    "pyannote_sample": (SHARED / "pyannote_sample" / "sample.wav", SHARED / "pyannote_sample" / "sample.rttm"),
    "falcon": (SHARED / "picovoice_falcon_test" / "test.wav", SHARED / "picovoice_falcon_test" / "test.rttm"),
    "pyaudioanalysis_4": (SHARED / "pyaudioanalysis_diarization" / "diarizationExample.wav",
                          SHARED / "pyaudioanalysis_diarization" / "diarizationExample.rttm"),
    "pyaudioanalysis_6": (SHARED / "pyaudioanalysis_diarization" / "diarizationExample2.wav",
                          SHARED / "pyaudioanalysis_diarization" / "diarizationExample2.rttm"),
}  # fmt: skip
CROSS = [("ami/trn00", "ami/trn03"), ("ami/trn03", "ami/trn00"), ("ami/trn06", "ami/trn09"), ("ami/trn09", "ami/trn06")]
THRESHOLDS = [round(t, 2) for t in np.arange(0.50, 0.96, 0.05)]


def read_rttm(path: Path) -> list[tuple[float, float, str]]:
    turns = []
    for line in path.read_text().splitlines():
        f = line.split()
        if f and f[0] == "SPEAKER":
            turns.append((float(f[3]), float(f[3]) + float(f[4]), f[7].replace("MÉO", "MEO")))
    return turns


def clean_pieces(turns, speaker: str, min_s: float) -> list[tuple[float, float]]:
    """The speaker's turns less every moment another speaker talks, in pieces of at least min_s."""
    others = sorted((a, b) for a, b, s in turns if s != speaker)
    pieces = []
    for start, end, who in sorted(turns):
        if who != speaker:
            continue
        at = start
        for a, b in others:
            if b <= at or a >= end:
                continue
            if a > at:
                pieces.append((at, a))
            at = max(at, b)
        if end > at:
            pieces.append((at, end))
    return [p for p in pieces if p[1] - p[0] >= min_s]


def load_audio(path: Path) -> np.ndarray:
    """16 kHz mono float32, decoded by ffmpeg as the extract stage does (stereo is mixed down)."""
    import subprocess

    raw = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-ac", "1", "-ar", "16000",
                          "-f", "f32le", "-"], check=True, capture_output=True).stdout  # fmt: skip
    return np.frombuffer(raw, dtype="<f4").copy()


def capped(pieces, max_s: float):
    chosen, total = [], 0.0
    for a, b in sorted(pieces, key=lambda p: (p[0] - p[1], p[0])):
        if total >= max_s:
            break
        chosen.append((a, b))
        total += b - a
    return chosen


def halves(pieces, min_s: float):
    """The speaker's clean speech cut in two at the middle of its duration (the piece holding the
    middle is cut there too); a half shorter than min_s is left empty."""
    total, run = sum(b - a for a, b in pieces), 0.0
    first, second = [], []
    for a, b in sorted(pieces):
        if run + (b - a) <= total / 2:
            first.append((a, b))
        elif run >= total / 2:
            second.append((a, b))
        else:
            cut = a + total / 2 - run
            first.append((a, cut))
            second.append((cut, b))
        run += b - a
    keep = lambda part: [p for p in part if p[1] - p[0] >= min_s]  # noqa: E731
    return keep(first), keep(second)


class Prints:
    """Prints of a speaker's clean speech in a clip: all of it, or its earlier or later half."""

    def __init__(self, embedder, config):
        self.embedder, self.config = embedder, config
        self.audio: dict[str, np.ndarray] = {}

    def vector(self, clip: str, speaker: str, half: int | None = None):
        from emessi_pipeline.dataset.voiceprints import robust_mean

        wav, rttm = CLIPS[clip]
        if clip not in self.audio:
            self.audio[clip] = load_audio(wav)
        pieces = clean_pieces(read_rttm(rttm), speaker, self.config.min_stretch_s)
        if half is not None:
            pieces = halves(pieces, self.config.min_stretch_s)[half]
        pieces = capped(pieces, self.config.max_speech_s)
        if not pieces:
            return None, 0.0
        audio = self.audio[clip]
        vectors = self.embedder.embed([audio[int(a * 16000):int(b * 16000)] for a, b in pieces])
        weights = np.array([b - a for a, b in pieces])
        vector, _ = robust_mean(vectors, weights, self.config.trim_share)
        return vector, float(weights.sum())


def match(enrolled: dict[str, np.ndarray], tested: dict[str, np.ndarray]):
    """Hungarian one-to-one: test label → (participant, score)."""
    from scipy.optimize import linear_sum_assignment

    people, labels = sorted(enrolled), sorted(tested)
    if not people or not labels:
        return {}, {}
    scores = np.array([[float(tested[lab] @ enrolled[p]) for p in people] for lab in labels])
    rows, cols = linear_sum_assignment(scores, maximize=True)
    return {labels[r]: (people[c], scores[r, c]) for r, c in zip(rows, cols)}, {
        (labels[r], people[c]): scores[r, c] for r in range(len(labels)) for c in range(len(people))}


def trials(prints: Prints) -> list[dict]:
    """Every test label: its truth (None: a stranger), what matching gave it and its score."""
    out = []

    def run(kind: str, name: str, enrolled: dict, tested: dict, truth: dict):
        chosen, every = match(enrolled, tested)
        for label in sorted(tested):
            participant, score = chosen.get(label, (None, None))
            out.append({"kind": kind, "trial": name, "label": label, "truth": truth[label], "suggested": participant,
                        "score": None if score is None else round(float(score), 4),
                        "genuine": [round(float(s), 4) for (lab, p), s in every.items() if lab == label and p == truth[label]],
                        "impostor": [round(float(s), 4) for (lab, p), s in every.items() if lab == label and p != truth[label]]})

    speakers = {clip: sorted({s for _, _, s in read_rttm(rttm)}) for clip, (_, rttm) in CLIPS.items()}
    for enrol, test in CROSS:
        enrolled = {s: v for s in speakers[enrol] if (v := prints.vector(enrol, s)[0]) is not None}
        tested = {s: v for s in speakers[test] if (v := prints.vector(test, s)[0]) is not None}
        run("cross-session", f"{enrol}→{test}", enrolled, tested, {s: s if s in enrolled else None for s in tested})
    for clip in CLIPS:
        first = {s: v for s in speakers[clip] if (v := prints.vector(clip, s, 0)[0]) is not None}
        second = {s: v for s in speakers[clip] if (v := prints.vector(clip, s, 1)[0]) is not None}
        both = {s: second[s] for s in second if s in first}
        run("split", clip, first, both, {s: s for s in both})
        for out_one in sorted(both):  # that speaker is not enrolled: a stranger in the new session
            run("split, one left out", f"{clip} without {out_one}", {s: v for s, v in first.items() if s != out_one},
                both, {s: (None if s == out_one else s) for s in both})
    return out


def summarise(rows: list[dict]) -> list[dict]:
    table = []
    for threshold in THRESHOLDS:
        for kind in ("cross-session", "split", "split, one left out", "all"):
            chosen = [r for r in rows if kind == "all" or r["kind"] == kind]
            known = [r for r in chosen if r["truth"] is not None]
            strangers = [r for r in chosen if r["truth"] is None]
            right = sum(1 for r in known if r["suggested"] == r["truth"] and r["score"] >= threshold)
            taken = sum(1 for r in strangers if r["suggested"] is not None and r["score"] >= threshold)
            table.append({"threshold": threshold, "kind": kind, "known_labels": len(known),
                          "accuracy": round(right / len(known), 3) if known else None,
                          "strangers": len(strangers),
                          "false_accept_rate": round(taken / len(strangers), 3) if strangers else None})
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write every trial and the summary here")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--min-stretch", type=float, help="override voiceprints.min_stretch_s")
    args = parser.parse_args()

    from emessi_pipeline.config import load_profile
    from emessi_pipeline.stages.embedding import speaker_embedder

    config = load_profile(args.profile, {"voiceprints.min_stretch_s": args.min_stretch}).voiceprints
    embedder = speaker_embedder(config.embedding)
    rows = trials(Prints(embedder, config))
    table = summarise(rows)
    genuine = [s for r in rows for s in r["genuine"]]
    impostor = [s for r in rows for s in r["impostor"]]
    ranked = [r for r in rows if r["truth"] is not None]
    print(f"embedder {embedder.identity}; min_stretch_s {config.min_stretch_s}, max_speech_s {config.max_speech_s}, "
          f"trim_share {config.trim_share}")
    print(f"test labels: {len(ranked)} known, {len(rows) - len(ranked)} strangers; without a threshold the matching "
          f"names {sum(r['suggested'] == r['truth'] for r in ranked)}/{len(ranked)} known labels right")
    for name, scores in (("genuine", genuine), ("impostor", impostor)):
        q = np.quantile(scores, [0.05, 0.25, 0.5, 0.75, 0.95]) if scores else []
        print(f"{name} cosine (n={len(scores)}): 5/25/50/75/95 % = {' / '.join(f'{v:.3f}' for v in q)}")
    print("\n| threshold | trials | known labels | accuracy | strangers | false accepts |\n|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['threshold']:.2f} | {r['kind']} | {r['known_labels']} | {r['accuracy']} | {r['strangers']} | "
              f"{r['false_accept_rate']} |")
    if args.json:
        args.json.write_text(json.dumps({"trials": rows, "summary": table}, indent=1))


if __name__ == "__main__":
    main()
