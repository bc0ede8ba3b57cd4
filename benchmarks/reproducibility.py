"""Whisper's temperature fallback, unseeded and seeded, against temperature 0 alone: repeatability,
WER/CER, loops, time.

    nice -n 19 .venv/bin/python benchmarks/reproducibility.py        # ~10 min on 2 cores

faster-whisper re-decodes a window that looks bad (compression ratio, log-probability) at rising
temperatures, 0.2 … 1.0, and any temperature above 0 samples at random: the same file can give
other words on the next run. Settings: the fallback with one model reused (the behaviour before:
the generator runs on from whatever was decoded before), the fallback seeded for every recording
(stages/transcribe.Whisper, the default), and temperature 0 alone. Each recording is decoded
twice with each setting, in one process (as a nightly batch would); reported per setting:
- identical: recordings whose two decodings gave the same words with the same times;
- WER/CER where a reference transcript exists (the Finnish espeak-ng scripts, the pyannote
  sample's STM, jfk.flac), lower case, punctuation removed;
- loops: words the repetition guard flagged; time: transcription seconds per audio second.

Recordings: the demo script and benchmarks/finnish/*.yaml voiced by espeak-ng (language fi), and
from ../shared/data the pyannote sample, jfk.flac and the seven AMI clips (language en; AMI has
timelines but no transcript, so it counts for repeatability, loops and time only), and the
ten-minute six-voice Finnish meeting of benchmarks/recordings.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
CACHE = Path(os.environ.get("EMESSI_WER_CACHE", "/tmp/emessi-wer"))

from emessi_pipeline.config import load_profile  # noqa: E402
from emessi_pipeline.evaluation.metrics import character_error_rate, word_error_rate  # noqa: E402
from emessi_pipeline.evaluation.references import read_reference  # noqa: E402
from emessi_pipeline.stages import audio  # noqa: E402
from emessi_pipeline.stages.transcribe import load_model, transcribe  # noqa: E402

FALLBACK = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# name: (temperatures, seeded per recording)
SETTINGS = {"fallback, unseeded (before)": (FALLBACK, False), "fallback, seeded (default)": (FALLBACK, True),
            "temperature 0 only": ((0.0,), True)}


def recordings() -> list[tuple[str, str, Path, str | None]]:
    """(name, language, media file, reference text or None)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from finnish_wer import recording as finnish, scripts  # noqa: E402

    items = []
    for name, script in scripts().items():
        finnish(name, script)  # synthesised once into the cache
        reference = " ".join(text for _, text in script["turns"])
        items.append((name, "fi", CACHE / name / f"{name}.16k.wav", reference))
    stm = read_reference(SHARED / "pyannote_sample" / "sample.stm")
    items.append(("pyannote sample", "en", SHARED / "pyannote_sample" / "sample.wav",
                  " ".join(span.text for span in stm.spans)))  # fmt: skip
    jfk = (SHARED / "faster_whisper_testdata" / "references.tsv").read_text().splitlines()[1].split("\t")[2]
    items.append(("jfk", "en", SHARED / "faster_whisper_testdata" / "jfk.flac", jfk))
    for wav in sorted((SHARED / "ami").glob("*.wav")):
        if wav.stem != "silence_1s":
            items.append((f"ami {wav.stem}", "en", wav, None))
    # Ten minutes of six voices turn after turn: long enough for Whisper's fallback to fire.
    from recordings import build  # noqa: E402

    meeting = build(CACHE / "bench")["10min"]
    turns = json.loads((meeting.parent / "meeting-10min.reference.json").read_text())
    items.append(("meeting 10 min", "fi", meeting, " ".join(t["text"] for t in turns if t["end"] <= 600)))
    return items


def words(transcript) -> list[tuple[str, float, float]]:
    return [(w.text, w.start, w.end) for s in transcript.segments for w in s.words]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=CACHE / "reproducibility.json")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", help="only recordings whose name contains this")
    parser.add_argument("--setting", action="append", choices=list(SETTINGS), help="only these settings (repeatable)")
    args = parser.parse_args()
    base = load_profile("default").asr
    seeded = load_model(base)[0]
    unseeded = seeded.decoder()  # one faster-whisper model, reused: its generator runs on
    results = []
    for name, language, path, reference in recordings():
        if args.only and args.only not in name:
            continue
        wav = CACHE / "media" / f"{name.replace(' ', '_')}.wav"
        if not wav.exists():
            wav.parent.mkdir(parents=True, exist_ok=True)
            audio.extract(path, wav)
        samples = audio.read_wav(wav)[0]
        for setting, (temperatures, seed) in SETTINGS.items():
            if args.setting and setting not in args.setting:
                continue
            cfg = base.model_copy(update={"language": language, "temperature": temperatures})
            model = seeded if seed else unseeded
            runs = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                transcript = transcribe(model, samples, cfg)
                runs.append((transcript, time.perf_counter() - started))
            text = " ".join(w.text.strip() for s in runs[0][0].segments for w in s.words)
            row = {
                "recording": name, "setting": setting, "audio_s": len(samples) / 16_000,
                "identical": all(words(t) == words(runs[0][0]) for t, _ in runs[1:]),
                "seconds": [round(s, 2) for _, s in runs],
                "loop_words": sum(w.loop for s in runs[0][0].segments for w in s.words),
                "dropped": runs[0][0].dropped_loop_words,
                "wer": word_error_rate(reference, text, language) if reference else None,
                "cer": character_error_rate(reference, text, language) if reference else None,
                "texts": [" ".join(w[0].strip() for w in words(t)) for t, _ in runs],
            }  # fmt: skip
            results.append(row)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1))  # kept if interrupted
            print(f"{name:18s} {setting:15s} identical={row['identical']!s:5s} "
                  f"WER={row['wer'] if row['wer'] is None else round(row['wer'], 3)} "
                  f"loops={row['loop_words']} t={row['seconds']}", flush=True)  # fmt: skip
    table(results)


def table(results: list[dict]) -> None:
    print("\n| setting | identical runs | mean WER (fi) | mean CER (fi) | mean WER (en) | loop words | "
          "transcription s per audio s (min–max) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for setting in SETTINGS:
        rows = [r for r in results if r["setting"] == setting]
        if not rows:
            continue
        fi = [r for r in rows if r["wer"] is not None and r["recording"] not in ("pyannote sample", "jfk")]
        en = [r for r in rows if r["wer"] is not None and r["recording"] in ("pyannote sample", "jfk")]
        mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
        rtf = [s / r["audio_s"] for r in rows for s in r["seconds"]]
        total = sum(sum(r["seconds"]) for r in rows) / sum(r["audio_s"] * len(r["seconds"]) for r in rows)
        print(f"| {setting} | {sum(r['identical'] for r in rows)}/{len(rows)} | {mean([r['wer'] for r in fi]):.3f} | "
              f"{mean([r['cer'] for r in fi]):.3f} | {mean([r['wer'] for r in en]):.3f} | "
              f"{sum(r['loop_words'] for r in rows)} | {total:.3f} ({min(rtf):.3f}–{max(rtf):.3f}) |")  # fmt: skip


if __name__ == "__main__":
    main()
