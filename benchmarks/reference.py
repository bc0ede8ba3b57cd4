"""The reference: what a researcher would write by hand with the same two libraries.

Decode the file, run faster-whisper, then run the pyannote pipeline, one after the other; give
each word the speaker who talks most during it; write JSON. The models and their settings are
emessi's default profile's (the same SpeakerDiarization object is built the same way, since the
offline models need emessi's small embedding wrapper); the calls are the libraries' plain API.

    .venv/bin/python benchmarks/reference.py RECORDING OUT.json --num-speakers 6 [--library-threads]

Prints one JSON line with the stage times; peak memory is read by the caller (wait4).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("recording", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--num-speakers", type=int, default=None)
    parser.add_argument("--library-threads", action="store_true",
                        help="leave thread counts to the libraries (CTranslate2 4, torch = cores)")
    args = parser.parse_args()
    times = {}
    started = time.monotonic()

    import torch
    from faster_whisper import WhisperModel, decode_audio

    from emessi_pipeline.config import load_profile
    from emessi_pipeline.stages.diarize import _offline_pipeline
    from emessi_pipeline.stages.models import resolve_shipped

    profile = load_profile("default")
    asr, dia = profile.asr, profile.diarization
    t = time.monotonic()
    audio = decode_audio(str(args.recording), sampling_rate=16000)
    times["decode"] = time.monotonic() - t

    t = time.monotonic()
    model = WhisperModel(str(resolve_shipped(asr.model)), device="cpu", compute_type=asr.compute_type,
                         cpu_threads=0 if args.library_threads else asr.cpu_threads)  # fmt: skip
    segments, info = model.transcribe(audio, language=asr.language, beam_size=asr.beam_size, word_timestamps=True,
                                      vad_filter=asr.vad_filter,
                                      condition_on_previous_text=asr.condition_on_previous_text)  # fmt: skip
    words = [(w.start, w.end, w.word) for s in segments for w in s.words]
    times["transcribe"] = time.monotonic() - t

    t = time.monotonic()
    if not args.library_threads:
        torch.set_num_threads(dia.threads)
    pipeline, _ = _offline_pipeline(dia)
    kwargs = {"num_speakers": args.num_speakers} if args.num_speakers else {}
    output = pipeline({"waveform": torch.from_numpy(audio)[None], "sample_rate": 16000}, **kwargs)
    turns = [(seg.start, seg.end, label) for seg, _, label in output.exclusive_speaker_diarization.itertracks(yield_label=True)]
    times["diarize"] = time.monotonic() - t

    t = time.monotonic()
    rows = []
    for start, end, text in words:
        talk = {}
        for t0, t1, label in turns:
            if t0 < end and t1 > start:
                talk[label] = talk.get(label, 0.0) + min(end, t1) - max(start, t0)
        rows.append({"start": start, "end": end, "word": text, "speaker": max(talk, key=talk.get) if talk else None})
    args.out.write_text(json.dumps(rows, ensure_ascii=False))
    times["assign_and_write"] = time.monotonic() - t
    times["wall"] = time.monotonic() - started
    print(json.dumps({"stage_seconds": {k: round(v, 3) for k, v in times.items()}, "words": len(rows),
                      "duration_s": len(audio) / 16000}))  # fmt: skip


if __name__ == "__main__":
    main()
