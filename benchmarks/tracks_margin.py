"""The cross-talk margin of per-participant tracks (tracks.crosstalk_db), measured.

    nice -n 19 .venv/bin/python benchmarks/tracks_margin.py

Two meetings cut into one track per speaker, every other speaker bleeding in at BLEED dB, each
track's gain changed by GAINS dB (microphones at other levels), scored by DER (collar 0) against
the turns the tracks were cut by: the pyannote sample's 6.0-21.7 s with its reference RTTM (real
speech, one overlap), and three espeak-ng Finnish voices (tests/test_tracks.py's script). Prints
one row per bleed and gain spread, one "margin:DER real/DER Finnish" cell per margin. Results in
docs/multitrack.md.
"""
import json, sys, tempfile, warnings
import numpy as np
warnings.filterwarnings("ignore")
from pathlib import Path
from scipy.io import wavfile
from scipy.signal import resample_poly
from emessi_pipeline.evaluation.metrics import diarization_error_rate
from emessi_pipeline.evaluation.references import read_rttm
from emessi_pipeline.stages.records import SpeakerTurn
from emessi_pipeline.stages.tracks import diarize_tracks
from emessi_pipeline.config import TracksConfig
R = 16000
SHARED = Path(__file__).resolve().parent.parent.parent / 'shared' / 'data'
r, x = wavfile.read(str(SHARED / 'pyannote_sample' / 'sample.wav')); x = x.astype(np.float32) / 32768
x = x[6*R:int(21.7*R)]
real = [SpeakerTurn(start=t.start-6, end=t.end-6, speaker=t.speaker) for t in read_rttm(str(SHARED / 'pyannote_sample' / 'sample.rttm')) if t.end < 21.7]
from emessi_pipeline.runs.demo import synthesize
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.test_tracks import FINNISH
root = Path(tempfile.mkdtemp())
synthesize(FINNISH, root / "fi", name="fi", gap=0.5, lead_in=0.5)
r2, f = wavfile.read(root/'fi'/'fi.wav'); f = resample_poly(f.astype(np.float32)/32768, 320, 441).astype(np.float32)
fi = [SpeakerTurn(start=t['start'], end=t['end'], speaker=t['speaker']) for t in json.loads((root/'fi'/'fi.reference.json').read_text())]
def build(x, turns, bleed_db, gains):
    out = {}
    for i, s in enumerate(sorted({t.speaker for t in turns})):
        own = np.zeros(x.size, bool)
        for t in turns:
            if t.speaker == s: own[int(t.start*R):int(t.end*R)] = True
        out[s] = (10**(gains[i % len(gains)]/20) * np.where(own, x, 10**(bleed_db/20)*x)).astype(np.float32)
    return out
RELATIVE = "--relative" in sys.argv
print(f"bleed gains margin: DER real, DER fi (levels {'relative to each track' if RELATIVE else 'raw'})")
for bleed in (-20, -30, -40):
    for gains in ((0,), (0, -10), (0, 10, -6), (0, 20, -10)):
        row = []
        for margin in (6, 10, 15, 20, 25, 35):
            c = TracksConfig(crosstalk_db=margin, crosstalk_relative=RELATIVE)
            a = diarization_error_rate(real, list(diarize_tracks(build(x, real, bleed, gains), R, c).turns))['der']
            b = diarization_error_rate(fi, list(diarize_tracks(build(f, fi, bleed, gains), R, c).turns))['der']
            row.append(f"{margin}:{a:.3f}/{b:.3f}")
        print(bleed, gains, " ".join(row), flush=True)
