"""Simulated group meetings with known truth, from real single-speaker speech in ../shared/data.

Each meeting (10-20 min) has 4-11 participants taken from the real voices of the shared clips
(AMI, the pyannote sample, the picovoice clip, the 6-speaker pyAudioAnalysis clip): every
stretch where the reference has one speaker alone (trimmed by 50 ms at each end, 200 ms for the
coarse pyAudioAnalysis timeline, at least 0.8 s) is a piece of that person's speech; the 20
people with at least 1.8 s of such pieces are the voices. Turns are one to three consecutive pieces of one person, who
speaks with a dominance drawn per meeting (a few people talk most, everyone speaks); between
turns a natural pause (0.1-2 s), sometimes the next speaker starts early (overlap 0.2-1 s), and
sometimes another participant says something short inside a turn (a backchannel of 0.3-1 s).
Each participant gets a level of their own (-26..-20 dBFS) and a light noise floor covers the
silences. The truth (RTTM) lists every placed piece; a manifest-style JSON gives the group size
(participants + absent members, an upper bound, as a manifest would) and the true count.

    nice -n 19 .venv/bin/python benchmarks/simulated_meetings.py build --out /tmp/emessi-sim
    nice -n 19 .venv/bin/python benchmarks/simulated_meetings.py score --out /tmp/emessi-sim \\
        --pair pyannote-segmentation-v2+resemblyzer-ge2e --pair pyannote-segmentation-3.0+campplus

What it does not show: each person's pieces come from one short clip (1.8-41 s of speech each),
so the same few seconds of speech recur many times in a meeting (easier for clustering than fresh speech), and different
people come from different rooms and microphones (a channel cue real meetings in one room lack).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
SHARED = REPO.parent / "shared" / "data"
RATE = 16_000

from emessi_pipeline.evaluation.references import read_rttm  # noqa: E402

# (wav, rttm, window end, trim at each end in s): clips with single-speaker timelines; the
# 6-speaker pyAudioAnalysis reference is contiguous at 0.1 s resolution, so it is trimmed more.
PYAA = SHARED / "pyaudioanalysis_diarization"
SOURCES = [(SHARED / "ami" / f"{n}.wav", SHARED / "ami" / f"{n}.rttm", 30.0, 0.05)
           for n in ("dev01", "trn00", "trn03", "trn04", "trn06", "trn07", "trn09")] + [
    (SHARED / "pyannote_sample" / "sample.wav", SHARED / "pyannote_sample" / "sample.rttm", 30.0, 0.05),
    (SHARED / "picovoice_falcon_test" / "test.wav", SHARED / "picovoice_falcon_test" / "test.rttm", 18.6, 0.05),
    (PYAA / "diarizationExample2.wav", PYAA / "diarizationExample2.rttm", 22.0, 0.2),
]  # fmt: skip

MEETINGS = [  # (name, participants, absent members, minutes, seed)
    ("sim04", 4, 1, 10.0, 104),
    ("sim06", 6, 0, 10.0, 106),
    ("sim08", 8, 2, 10.0, 108),
    ("sim11", 11, 0, 10.0, 111),
    # Added on 29 November before any of them was scored, so that the count's hit rate rests on
    # ten meetings of 4-11 people and 10-20 minutes instead of four.
    ("sim05", 5, 2, 15.0, 105),
    ("sim07", 7, 1, 10.0, 107),
    ("sim09", 9, 2, 10.0, 109),
    ("sim10", 10, 1, 12.0, 110),
    ("sim04b", 4, 2, 20.0, 204),
    ("sim06b", 6, 3, 15.0, 206),
    # Built after the count rule (cut 0.28, min share 0.01, min size 12) had been chosen on the
    # real tuning clips and sim04-sim11, to check it on meetings no choice had seen.
    ("chk04", 4, 2, 12.0, 304),
    ("chk05", 5, 1, 10.0, 305),
    ("chk06", 6, 2, 15.0, 306),
    ("chk07", 7, 0, 10.0, 307),
    ("chk08", 8, 1, 20.0, 308),
    ("chk09", 9, 0, 12.0, 309),
    ("chk10", 10, 1, 10.0, 310),
    ("chk11", 11, 0, 15.0, 311),
    # A second held-out set, built on 29 November with the rule unchanged since the check set:
    # eight checks were too few to read an 80 % hit rate from (one meeting is 12.5 points).
    ("hold04", 4, 1, 15.0, 404),
    ("hold05", 5, 3, 12.0, 405),
    ("hold06", 6, 1, 10.0, 406),
    ("hold07", 7, 2, 20.0, 407),
    ("hold08", 8, 0, 12.0, 408),
    ("hold09", 9, 1, 15.0, 409),
    ("hold10", 10, 0, 20.0, 410),
    ("hold11", 11, 0, 10.0, 411),
    # A third held-out set, listed on 30 November before any of it was built or scored and before
    # any other count rule was tried on the 26 meetings above (which are all tuning side from now
    # on): two meetings of each size, so that 80 % can be read from sixteen.
    ("val04", 4, 2, 12.0, 504),
    ("val05", 5, 1, 15.0, 505),
    ("val06", 6, 0, 20.0, 506),
    ("val07", 7, 3, 12.0, 507),
    ("val08", 8, 1, 10.0, 508),
    ("val09", 9, 2, 15.0, 509),
    ("val10", 10, 0, 12.0, 510),
    ("val11", 11, 0, 20.0, 511),
    ("val04b", 4, 0, 20.0, 604),
    ("val05b", 5, 3, 10.0, 605),
    ("val06b", 6, 2, 12.0, 606),
    ("val07b", 7, 0, 15.0, 607),
    ("val08b", 8, 2, 20.0, 608),
    ("val09b", 9, 1, 10.0, 609),
    ("val10b", 10, 1, 15.0, 610),
    ("val11b", 11, 0, 12.0, 611),
    # test (30 November): listed before it was built, after the val set had been looked at twice
    # (the count rule, then the clustering); for the choice of clustering start made after that
    ("tst04", 4, 1, 10.0, 704),
    ("tst05", 5, 2, 12.0, 705),
    ("tst06", 6, 1, 10.0, 706),
    ("tst07", 7, 0, 12.0, 707),
    ("tst08", 8, 2, 10.0, 708),
    ("tst09", 9, 0, 12.0, 709),
    ("tst10", 10, 1, 10.0, 710),
    ("tst11", 11, 0, 12.0, 711),
]

# Generated Finnish meetings (espeak-ng voices, turns one after another, no overlap): the shipped
# scripts and the 10-minute benchmark meeting. The group size is the script's cast, as the demo's
# manifest gives it.
FINNISH = [  # (name, script: a file in benchmarks/finnish, "demo", or "meeting-10min")
    ("fi-demo", "demo"),
    ("fi-numerot", "numerot"),
    ("fi-kuittaukset", "kuittaukset"),
    ("fi-opinnot", "opinnot"),
    ("fi-meeting10", "meeting-10min"),
]


@dataclass
class Piece:
    speaker: str
    audio: np.ndarray


def voices(min_seconds: float = 1.8) -> dict[str, list[np.ndarray]]:
    """Single-speaker pieces per person (AMI speaker ids are global, so a person met in two
    clips is one voice), people with at least *min_seconds* of them."""
    pool: dict[str, list[np.ndarray]] = {}
    for wav, rttm, end, trim in SOURCES:
        samples = _read(wav)
        turns = [t for t in read_rttm(rttm) if t.start < end]
        prefix = wav.parent.name + ":" if wav.parent.name != "ami" else ""
        for turn in turns:
            alone = [(turn.start, min(turn.end, end))]
            for other in turns:
                if other.speaker != turn.speaker:
                    alone = [part for span in alone for part in _minus(span, (other.start, other.end))]
            for start, stop in alone:
                start, stop = start + trim, stop - trim
                if stop - start >= 0.8:
                    pool.setdefault(prefix + turn.speaker, []).append(samples[int(start * RATE) : int(stop * RATE)])
    return {k: v for k, v in sorted(pool.items()) if sum(len(p) for p in v) / RATE >= min_seconds}


def _read(path: Path) -> np.ndarray:
    """Any audio file as 16 kHz mono float32 (ffmpeg, as the pipeline reads it)."""
    import subprocess

    raw = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-ac", "1", "-ar", str(RATE),
                          "-f", "f32le", "-"], capture_output=True, check=True).stdout  # fmt: skip
    return np.frombuffer(raw, dtype=np.float32).copy()


def _write(path: Path, samples: np.ndarray) -> None:
    import wave

    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def _minus(span, cut):
    (a, b), (c, d) = span, cut
    if d <= a or c >= b:
        return [span]
    return [p for p in ((a, c), (d, b)) if p[1] - p[0] > 0]


def _level(x: np.ndarray, dbfs: float) -> np.ndarray:
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2)) or 1e-9
    return (x * (10 ** (dbfs / 20) / rms)).astype(np.float32)


def simulate(participants: int, minutes: float, seed: int, pool: dict[str, list[np.ndarray]]):
    """(waveform, truth turns [(start, end, speaker)], chosen speaker ids)."""
    rng = np.random.default_rng(seed)
    people = sorted(rng.choice(sorted(pool), size=participants, replace=False).tolist())
    share = rng.dirichlet(np.full(participants, 1.5))
    share = 0.5 * share + 0.5 / participants  # everyone speaks; a few speak most
    level = {p: rng.uniform(-26, -20) for p in people}
    total = int(minutes * 60 * RATE)
    out = np.zeros(total + 30 * RATE, dtype=np.float32)
    truth: list[tuple[float, float, str]] = []
    t, previous = 0.5 * RATE, None

    def place(person: str, piece: np.ndarray, at: int) -> int:
        piece = _level(piece, level[person] + rng.uniform(-1.5, 1.5))
        out[at : at + len(piece)] += piece
        truth.append((at / RATE, (at + len(piece)) / RATE, person))
        return at + len(piece)

    while t < total:
        weights = np.array([0.0 if p == previous else s for p, s in zip(people, share)])
        person = people[rng.choice(participants, p=weights / weights.sum())]
        pieces = pool[person]
        first = int(rng.integers(len(pieces)))
        turn = [pieces[(first + i) % len(pieces)] for i in range(int(rng.integers(1, 4)))]
        start, end = int(t), int(t)
        for piece in turn:
            end = place(person, piece, end)
        if participants > 1 and rng.random() < 0.2:  # a backchannel inside the turn
            other = people[int(rng.choice([i for i, p in enumerate(people) if p != person]))]
            source = pool[other][int(rng.integers(len(pool[other])))]
            length = min(len(source), int(rng.uniform(0.3, 1.0) * RATE))
            if end - start > 2 * length:
                at = int(rng.integers(start + length // 2, end - length - length // 2))
                place(other, source[:length], at)
        if rng.random() < 0.15:  # the next one starts before this one has finished
            t = end - int(rng.uniform(0.2, 1.0) * RATE)
        else:
            t = end + int(rng.uniform(0.1, 2.0) * RATE)
        previous = person
    length = int(max(e for _, e, _ in truth) * RATE) + RATE // 2
    out = out[:length]
    out += rng.normal(0, 10 ** (-65 / 20), size=length).astype(np.float32)  # noise floor
    np.clip(out, -1, 1, out=out)
    return out, sorted(truth), people


def build(folder: Path, meetings=MEETINGS) -> None:
    pool = voices()
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{len(pool)} voices: " + ", ".join(f"{k} {sum(len(p) for p in v) / RATE:.0f} s" for k, v in pool.items()))
    for name, participants, absent, minutes, seed in meetings:
        wave, truth, people = simulate(participants, minutes, seed, pool)
        _write(folder / f"{name}.wav", wave)
        (folder / f"{name}.rttm").write_text("".join(
            f"SPEAKER {name} 1 {s:.3f} {e - s:.3f} <NA> <NA> {p} <NA> <NA>\n" for s, e, p in truth))  # fmt: skip
        meta = {"participants": participants, "group_size": participants + absent, "minutes": len(wave) / RATE / 60,
                "speakers": people, "seed": seed}  # fmt: skip
        (folder / f"{name}.json").write_text(json.dumps(meta, indent=1))
        print(f"{name}: {participants} of {participants + absent}, {len(wave) / RATE / 60:.1f} min, {len(truth)} pieces")


def build_finnish(folder: Path) -> None:
    """Voice the Finnish scripts (needs espeak-ng) and extract them as the ingest does."""
    from recordings import meeting_script

    from emessi_pipeline.runs.demo import load_script, synthesize
    from emessi_pipeline.stages import audio

    folder.mkdir(parents=True, exist_ok=True)
    for name, source in FINNISH:
        if source == "meeting-10min":
            script = meeting_script(10.0)
        else:
            script = load_script(None if source == "demo" else REPO / "benchmarks" / "finnish" / f"{source}.yaml")
        wav, turns = synthesize(script, folder / "espeak", name=name)
        audio.extract(wav, folder / f"{name}.wav")
        (folder / f"{name}.rttm").write_text((folder / "espeak" / f"{name}.rttm").read_text())
        speaking = sorted({t.speaker for t in turns})
        meta = {"participants": len(speaking), "group_size": len(script["speakers"]), "speakers": speaking,
                "minutes": turns[-1].end / 60, "script": source}  # fmt: skip
        (folder / f"{name}.json").write_text(json.dumps(meta, indent=1))
        print(f"{name}: {len(speaking)} of {len(script['speakers'])} voices, {turns[-1].end / 60:.1f} min, {len(turns)} turns")


def clips(folder: Path, names: list[str] | None = None):
    """The built meetings as tune_diarization clips (its caches of segmentation and embeddings
    then make re-clustering and count sweeps cheap)."""
    from tune_diarization import Clip

    out = []
    for name in [m[0] for m in MEETINGS] + [f[0] for f in FINNISH]:
        if (names and name not in names) or not (folder / f"{name}.json").is_file():
            continue
        meta = json.loads((folder / f"{name}.json").read_text())
        out.append(Clip(name, folder / f"{name}.wav", folder / f"{name}.rttm", meta["participants"], True,
                        group_size=meta["group_size"]))  # fmt: skip
    return out


def score(folder: Path, pairs: list[str], names: list[str] | None, out_json: Path, overrides: dict) -> dict:
    """DER and count per meeting and model pair, the count given and estimated within
    [1, group size] (the manifest's upper bound)."""
    import tune_diarization as tune

    results = json.loads(out_json.read_text()) if out_json.exists() else {}
    base = tune.load_profile("default").diarization
    for pair in pairs:
        segmentation, embedding = pair.split("+")
        cfg = tune.replace_cfg(base, segmentation=segmentation, embedding=embedding, **overrides)
        label = pair + "".join(f" {k}={v}" for k, v in overrides.items())
        for clip in clips(folder, names):
            row = {"true": clip.speakers, "group_size": clip.group_size}
            # "estimated": within [1, group size], as with the manifest's max_speakers;
            # "estimated_11": within the profile's [1, 11], as when the manifest says nothing.
            for mode, bound in (("given", None), ("estimated", clip.group_size), ("estimated_11", cfg.max_speakers)):
                started = time.time()
                turns, found = tune.diarize(clip, cfg, mode == "given", max_speakers=bound)
                der = tune.score(clip, turns)
                row[mode] = {k: round(der[k], 4) for k in ("der", "missed", "false_alarm", "confusion")}
                row[mode].update(found=found, wall_s=round(time.time() - started, 1))
            results.setdefault(label, {})[clip.name] = row
            out_json.write_text(json.dumps(results, indent=1))
            print(label, clip.name, json.dumps(row), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("build", "score"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/emessi-sim"))
    parser.add_argument("--pair", action="append", default=[], help="segmentation+embedding (repeatable)")
    parser.add_argument("--only", action="append", help="meeting name (repeatable)")
    parser.add_argument("--set", action="append", default=[], help="diarization setting, e.g. count_threshold=0.5")
    args = parser.parse_args()
    if args.action == "build":
        build(args.out, [m for m in MEETINGS if not args.only or m[0] in args.only])
        if not args.only or any(name in args.only for name, _ in FINNISH):
            build_finnish(args.out)
    else:
        overrides = dict(_setting(s) for s in args.set)
        score(args.out, args.pair or ["pyannote-segmentation-v2+resemblyzer-ge2e"], args.only,
              args.out / "scores.json", overrides)  # fmt: skip


def _setting(text: str):
    key, value = text.split("=", 1)
    return key, json.loads(value) if value[:1] in "0123456789-[{tfn" else value


if __name__ == "__main__":
    main()
