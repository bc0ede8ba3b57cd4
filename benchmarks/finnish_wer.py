"""Finnish WER/CER of the ASR settings on synthetic multi-speaker meetings (espeak-ng voices).

    nice -n 19 .venv/bin/python benchmarks/finnish_wer.py            # ~10 min on 2 busy cores
    nice -n 19 .venv/bin/python benchmarks/finnish_wer.py --beams 5 --vad on

Voices the demo meeting (emessi_pipeline/data/demo_meeting.yaml) and the scripts in
benchmarks/finnish/*.yaml with espeak-ng (demo.synthesize: turns one after another, 0.6 s gaps),
extracts 16 kHz mono as the ingest chain does, and transcribes each with the profile's ASR
settings varied: VAD filter on/off x beam size. The repetition guard is applied both ways
(drop/flag) to the same decoding, since it only post-processes the words. WER and CER come from
emessi_pipeline.evaluation.metrics (lower case, punctuation removed; digits are not spelled out, so
"18.05" against "kahdeksantoista nolla viisi" counts as errors).

Synthetic speech is clean, read at a steady rate, never overlaps, and espeak-ng's Finnish is
robotic: absolute numbers say little about real meetings; differences between settings on the
same audio (dropped backchannels, loops, number formatting) are what this measures.
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
CACHE = Path(os.environ.get("EMESSI_WER_CACHE", "/tmp/emessi-wer"))

from emessi_pipeline.stages import audio  # noqa: E402
from emessi_pipeline.config import load_profile  # noqa: E402
from emessi_pipeline.runs.demo import load_script, synthesize  # noqa: E402
from emessi_pipeline.evaluation.metrics import character_error_rate, word_error_rate  # noqa: E402
from emessi_pipeline.stages.transcribe import guard_repetitions, load_model, transcribe  # noqa: E402


def scripts() -> dict[str, dict]:
    out = {"demo": load_script()}
    for path in sorted((REPO / "benchmarks" / "finnish").glob("*.yaml")):
        out[path.stem] = load_script(path)
    return out


def recording(name: str, script: dict):
    """(16 kHz float32 audio, reference text) for a script, synthesised once into the cache."""
    folder = CACHE / name
    wav16 = folder / f"{name}.16k.wav"
    if not wav16.exists():
        wav, _ = synthesize(script, folder, name=name)
        audio.extract(wav, wav16)
    reference = " ".join(text for _, text in script["turns"])
    return audio.read_wav(wav16)[0], reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--beams", default="1,5")
    parser.add_argument("--vad", default="on,off")
    parser.add_argument("--json", type=Path, default=CACHE / "results.json")
    args = parser.parse_args()
    base = load_profile(args.profile).asr
    beams = [int(b) for b in args.beams.split(",")]
    vads = [v == "on" for v in args.vad.split(",")]
    data = {name: recording(name, script) for name, script in scripts().items()}
    results = []
    models = {}
    for vad in vads:
        for beam in beams:
            cfg = base.model_copy(update={"vad_filter": vad, "beam_size": beam, "repetition_action": "flag"})
            key = (cfg.model, cfg.compute_type, cfg.cpu_threads)
            if key not in models:
                models[key] = load_model(cfg)[0]
            for name, (samples, reference) in data.items():
                started = time.perf_counter()
                flagged = transcribe(models[key], samples, cfg)
                seconds = time.perf_counter() - started
                for action in ("drop", "flag"):
                    segments, dropped = guard_repetitions(
                        flagged.segments, cfg.repetition_min_repeats, cfg.repetition_max_ngram, drop=action == "drop"
                    )
                    hypothesis = " ".join(w.text.strip() for s in segments for w in s.words)
                    results.append({
                        "script": name, "vad": vad, "beam": beam, "repetition_action": action,
                        "wer": word_error_rate(reference, hypothesis), "cer": character_error_rate(reference, hypothesis),
                        "loop_words": sum(w.loop for s in segments for w in s.words), "dropped": dropped,
                        "audio_s": len(samples) / 16_000, "transcribe_s": seconds, "hypothesis": hypothesis,
                    })  # fmt: skip
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1))  # kept if interrupted
                print(f"{name:12s} vad={vad!s:5s} beam={beam}: WER {results[-2]['wer']:.3f} "
                      f"CER {results[-2]['cer']:.3f} ({seconds:.1f} s for {len(samples) / 16_000:.0f} s)", flush=True)  # fmt: skip
    table(results, list(data))


def table(results: list[dict], names: list[str]) -> None:
    print("\n| VAD | beam | repetition | " + " | ".join(f"{n} WER/CER" for n in names)
          + " | mean WER | mean CER | transcribe s (per audio s) |")  # fmt: skip
    print("|---" * (len(names) + 6) + "|")
    settings = sorted({(r["vad"], r["beam"], r["repetition_action"]) for r in results}, key=lambda s: (not s[0], s[1], s[2]))
    for vad, beam, action in settings:
        rows = [r for r in results if (r["vad"], r["beam"], r["repetition_action"]) == (vad, beam, action)]
        by = {r["script"]: r for r in rows}
        cells = [f"{by[n]['wer']:.3f}/{by[n]['cer']:.3f}" for n in names]
        mean_wer = sum(r["wer"] for r in rows) / len(rows)
        mean_cer = sum(r["cer"] for r in rows) / len(rows)
        secs = sum(r["transcribe_s"] for r in rows)
        dur = sum(r["audio_s"] for r in rows)
        print(f"| {'on' if vad else 'off'} | {beam} | {action} | " + " | ".join(cells)
              + f" | {mean_wer:.3f} | {mean_cer:.3f} | {secs:.0f} ({secs / dur:.2f}) |")  # fmt: skip


if __name__ == "__main__":
    main()
