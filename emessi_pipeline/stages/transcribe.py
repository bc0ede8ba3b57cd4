"""Speech to timed words with faster-whisper, with a guard against repetition loops."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import models
from .audio import as_float
from ..config import AsrConfig
from .records import Segment, Transcript, Word

ProgressHook = Callable[[float], None]  # seconds of audio done
SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class ResolvedAsrModel:
    source: str  # a local folder, or a hub name faster-whisper downloads
    identity: str
    local_only: bool


def resolve_model(config: AsrConfig, allow_downloads: bool) -> ResolvedAsrModel:
    name = config.model
    if name in models.SHIPPED_MODELS:
        path = models.resolve_shipped(name)
        return ResolvedAsrModel(str(path), models.SHIPPED_MODELS[name].identity, True)
    path = Path(name).expanduser()
    if path.exists():
        return ResolvedAsrModel(str(path), models.path_identity(path), True)
    return _resolve_hub_model(name, allow_downloads)


def _resolve_hub_model(name: str, allow_downloads: bool) -> ResolvedAsrModel:
    from faster_whisper.utils import download_model

    try:
        path = download_model(name, local_files_only=True)
        return ResolvedAsrModel(path, f"{name}@{Path(path).name}", True)
    except Exception:  # noqa: BLE001 - any failure here means "not in the local cache"
        if allow_downloads:
            return ResolvedAsrModel(name, name, False)
    raise models.MissingModelError(
        f"Whisper model '{name}' is not on this machine: allow downloads once "
        f"(`--allow-downloads`, needs the Hugging Face hub), or put a CTranslate2 model folder "
        f"on this machine and name its path in the profile's asr.model"
    )


def load_model(config: AsrConfig, allow_downloads: bool = False) -> tuple["Whisper", ResolvedAsrModel]:
    resolved = resolve_model(config, allow_downloads)
    return Whisper(config, resolved), resolved


class Whisper:
    """A faster-whisper model whose sampling repeats: every recording decodes from `asr.seed`.

    Whisper re-decodes a window that looks wrong (a loop, a low log-probability) at rising
    temperatures, and above 0 it samples. CTranslate2 seeds each worker thread's generator once,
    from the global seed, the first time that thread samples; seeding again later does not reach
    it. So after a recording that sampled, the model is loaded afresh (about a second for
    whisper-base) before the next one: each recording then starts from the same state whatever
    ran before it, in one batch, a shard or a fresh process (docs/accuracy.md).
    """

    def __init__(self, config: AsrConfig, resolved: ResolvedAsrModel):
        self.config, self.resolved = config, resolved
        self._model = None
        self._untouched = False  # no sampling since the seed was set and the model loaded

    def decoder(self):
        """The model to decode one recording (or, with `asr.blocks_from_seed`, one block) with,
        its generator still at the seed."""
        if self._model is None or not self._untouched:
            self._model = None  # free the old one before the new one loads
            self._model = self.load()
        self._untouched = False  # until a decoding finishes without sampling (an interrupt leaves it so)
        return self._model

    def load(self):
        """A new model at the seed."""
        import ctranslate2
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        ctranslate2.set_random_seed(self.config.seed)
        model = WhisperModel(self.resolved.source, device=self.config.device,
                             compute_type=self.config.compute_type, cpu_threads=self.config.cpu_threads,
                             local_files_only=self.resolved.local_only)  # fmt: skip
        model.feature_extractor = lean_features(model.feature_extractor)
        if self.config.vad_filter:  # the VAD model loads only for runs that use it
            lean_vad()
        return BatchedInferencePipeline(model) if self.config.batch_size > 0 else model

    def finished(self, sampled: bool) -> None:
        self._untouched = not sampled


def lean_features(extractor):
    """faster-whisper's feature extractor, computing the spectrogram's FFT 30 s at a time.

    The library frames the whole block at once (for 10 minutes: 60,000 frames × 400 samples,
    their FFT and copies, about 620 MB for a second or two); a Whisper block starting while
    diarisation holds its most was the 2-hour run's peak. Each frame's FFT depends on that frame
    alone, so the power spectrum is filled 30 s at a time; the Mel projection and the maximum that
    bounds the dynamic range are the library's own calls over the whole. The features are the
    library's bit for bit (tests/test_transcribe_blocks.py) for the power spectrum's 48 MB (10
    minutes) above the result."""
    from faster_whisper.feature_extractor import FeatureExtractor

    class LeanFeatures(FeatureExtractor):
        frames_at_once = 3000  # 30 s

        def __call__(self, waveform: np.ndarray, padding=160, chunk_length=None):
            if chunk_length is not None:
                self.n_samples = chunk_length * self.sampling_rate
                self.nb_max_frames = self.n_samples // self.hop_length
            if waveform.dtype is not np.float32:
                waveform = waveform.astype(np.float32)
            if padding:
                waveform = np.pad(waveform, (0, padding))
            window = np.hanning(self.n_fft + 1)[:-1].astype("float32")
            half, hop = self.n_fft // 2, self.hop_length
            padded = np.pad(waveform, (half, half), mode="reflect")  # what stft(center=True) does
            kept = (padded.size - self.n_fft) // hop  # every frame but the last, as the library keeps
            starts = range(0, kept, self.frames_at_once)
            power = np.empty((self.n_fft // 2 + 1, kept), dtype=np.float32)
            for first, last in zip(starts, [*starts[1:], kept]):
                stft = self.stft(padded[first * hop : (last - 1) * hop + self.n_fft], self.n_fft, hop,
                                 window=window, center=False, return_complex=True).astype("complex64")  # fmt: skip
                power[:, first:last] = np.abs(stft) ** 2
            # One projection over the whole, the library's very call: how BLAS rounds a column's
            # sums depends on the matrix's width and its kernel (OpenBLAS's Haswell kernel rounds
            # 30-s pieces otherwise than the whole), so pieces could not match on every processor.
            mel_spec = self.mel_filters @ power
            del power
            log_spec = np.log10(np.clip(mel_spec, a_min=1e-10, a_max=None))
            log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
            return (log_spec + 4.0) / 4.0

    lean = LeanFeatures.__new__(LeanFeatures)
    lean.__dict__.update(extractor.__dict__)
    return lean


class _VadInPieces:
    """Silero VAD's ONNX session, run *windows* windows at a time.

    faster-whisper hands the model 10,000 windows of 32 ms at once (5 min 20 s); for a 10-minute
    block that costs about 170 MB for a moment and leaves more of the C heap behind (measured
    alone: peak 477 → 303 MB, then 299 → 225 MB held). The model carries its state (h, c) from
    one window to the next, and the library already chains it between its own batches; chaining
    it between smaller pieces gives the same probabilities bit for bit, so the same speech
    timestamps (tests/test_transcribe_blocks.py)."""

    def __init__(self, session, windows: int = 1000):
        self.session, self.windows = session, windows

    def run(self, output_names, feeds):
        batch, h, c = feeds["input"], feeds["h"], feeds["c"]
        outputs = []
        for first in range(0, len(batch), self.windows):
            piece = batch[first : first + self.windows]
            output, h, c = self.session.run(output_names, {"input": piece, "h": h, "c": c})
            outputs.append(output)
        return np.concatenate(outputs, axis=0), h, c

    def __getattr__(self, name):
        return getattr(self.session, name)


def lean_vad(model=None):
    """Run faster-whisper's VAD model (by default the one instance the library caches and every
    transcription uses) in pieces of 1,000 windows; calling it again changes nothing."""
    if model is None:
        from faster_whisper.vad import get_vad_model

        model = get_vad_model()
    if not isinstance(model.session, _VadInPieces):
        model.session = _VadInPieces(model.session)
    return model


def transcribe(
    model,
    audio: np.ndarray,
    config: AsrConfig,
    progress: ProgressHook | None = None,
    before_block: Callable[[], object] | None = None,
    spare_core: threading.Event | None = None,
) -> Transcript:
    """Transcribe 16 kHz mono *audio* (float32, or int16 PCM converted a block at a time) into
    segments with word timings.

    *before_block* runs before each block of at most `asr.block_minutes` is decoded (the runs
    layer hands the allocator's free memory back there).

    With `asr.blocks_from_seed` (the default) every block decodes from the seed, so its words
    depend on its own audio and the settings alone. That is what lets a second decoder help:
    once *spare_core* is set (diarisation beside the transcription is done), a second model
    takes the next blocks not yet started, on a core of its own. Which decoder takes which block
    depends on timing; the transcript does not. Without it, one generator runs on through the
    blocks (as before 1 December 2026) and one decoder does them all."""
    options = dict(
        language=None if config.language in (None, "auto") else config.language,
        beam_size=config.beam_size,
        temperature=list(config.temperature),
        word_timestamps=True,
        vad_filter=config.vad_filter,
        condition_on_previous_text=config.condition_on_previous_text,
    )
    if config.batch_size > 0:
        options["batch_size"] = config.batch_size
    if audio.size == 0:
        return Transcript(language=config.language or "", language_probability=0.0,
                          duration=0.0, segments=())  # fmt: skip
    blocks = _Blocks(audio, block_bounds(audio, SAMPLE_RATE, config.block_minutes * 60), options,
                     before_block, progress)  # fmt: skip
    whisper = isinstance(model, Whisper)
    from_seed = whisper and config.blocks_from_seed
    second = None
    # A second model on the GPU, or beside a batched one, would compete for what the first uses.
    on_cores = config.device == "cpu" and config.batch_size == 0
    if from_seed and on_cores and spare_core is not None and len(blocks.bounds) > 1:
        second = threading.Thread(target=blocks.second_decoder, args=(model, spare_core),
                                  name="emessi-asr-second", daemon=True)  # fmt: skip
        second.start()
    try:
        if from_seed:
            blocks.decode(model.decoder, model.finished)
        else:
            decoder = model.decoder() if whisper else model
            sampled = blocks.decode(lambda: decoder)
            if whisper:
                model.finished(sampled)
    except BaseException:
        blocks.stop.set()
        raise
    finally:
        blocks.no_more.set()
        if second is not None:
            second.join()
    if blocks.error is not None:
        raise blocks.error
    guarded, dropped = guard_repetitions(
        [segment for block in blocks.segments for segment in block], config.repetition_min_repeats,
        config.repetition_max_ngram, drop=config.repetition_action == "drop",
    )  # fmt: skip
    return Transcript(
        language=blocks.language or "",
        language_probability=blocks.probability,
        duration=audio.size / SAMPLE_RATE,
        segments=tuple(guarded),
        dropped_loop_words=dropped,
    )


class _Blocks:
    """One recording's blocks, handed out in order to one decoder or two (`transcribe`)."""

    def __init__(self, audio: np.ndarray, bounds: list[tuple[int, int]], options: dict,
                 before_block: Callable[[], object] | None, progress: ProgressHook | None):  # fmt: skip
        self.audio, self.bounds, self.options = audio, bounds, options
        self.before_block, self.progress = before_block, progress
        self.segments: list[list[Segment]] = [[] for _ in bounds]
        self.language, self.probability = options["language"], 0.0
        self.known_language = threading.Event()  # every block decodes in the first block's language
        if self.language is not None:
            self.known_language.set()
        self.error: BaseException | None = None  # the second decoder's, raised by the first
        self.stop = threading.Event()  # the first decoder failed: the second stops too
        self.no_more = threading.Event()  # the first decoder is done: the second does not start
        self._next = 0
        self._lock = threading.Lock()
        self._seconds = [0.0 for _ in bounds]  # of audio decoded per block, for the progress bar

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= len(self.bounds) or self.stop.is_set():
                return None
            self._next += 1
            return self._next - 1

    def decode(self, decoder: Callable[[], object], finished: Callable[[bool], None] | None = None) -> bool:
        """Decode blocks until none is left; *decoder* gives the model for each (at the seed when
        *finished* is told after each block whether it sampled). True if any block sampled."""
        sampled_any = False
        while (index := self._take()) is not None:
            if self.before_block:  # before a reload, which would otherwise land on what the last block freed
                self.before_block()
            model = decoder()
            sampled = self._decode_block(index, model)
            del model  # a model loaded again for the next block must not load beside this one
            sampled_any = sampled_any or sampled
            if finished is not None:
                finished(sampled)
        return sampled_any

    def second_decoder(self, model: "Whisper", spare_core: threading.Event) -> None:
        """The second decoder: waits for the spare core, then takes blocks on a model of its
        own, loaded again after a block that sampled."""
        while not spare_core.wait(1.0):
            if self.no_more.is_set():
                return
        own = type(model)(model.config, model.resolved)  # a model of its own, not kept beyond the recording
        try:
            while not self.known_language.wait(1.0):
                if self.no_more.is_set():
                    return
            self.decode(own.decoder, own.finished)
        except BaseException as error:  # handed to the first decoder's thread
            self.error = error
            self.stop.set()

    def _decode_block(self, index: int, model) -> bool:
        start, end = self.bounds[index]
        # Whisper's feature extractor builds the spectrogram of everything it is given at once
        # (windowed frames, a complex128 FFT and copies: about 2.5 GB an hour); blocks cut at
        # quiet moments keep that to a few hundred MB however long the meeting is.
        if index > 0:
            self.known_language.wait()
        raw_segments, info = model.transcribe(as_float(self.audio[start:end]),
                                              **{**self.options, "language": self.language})  # fmt: skip
        if index == 0:
            self.language = self.language or info.language  # one language for the whole recording
            self.probability = float(info.language_probability)
            self.known_language.set()
        offset, sampled = start / SAMPLE_RATE, False
        for raw in raw_segments:
            if self.stop.is_set():
                break
            self.segments[index].append(_segment(raw, offset))
            sampled = sampled or self.segments[index][-1].temperature > 0.0
            self._done(index, float(raw.end))
        self._done(index, (end - start) / SAMPLE_RATE)
        return sampled

    def _done(self, index: int, seconds: float) -> None:
        self._seconds[index] = seconds
        if self.progress:
            self.progress(sum(self._seconds))


def block_bounds(audio: np.ndarray, rate: int, max_seconds: float, search_seconds: float = 30.0,
                 frame_seconds: float = 0.2) -> list[tuple[int, int]]:  # fmt: skip
    """Sample ranges of at most *max_seconds*, each cut at the quietest frame of its last
    *search_seconds*, so no word is split between two blocks."""
    limit, frame = int(max_seconds * rate), int(frame_seconds * rate)
    # a block shorter than the search window (asr.block_minutes under half a minute) is searched whole
    search = max(min(int(search_seconds * rate), limit), frame)
    bounds, start = [], 0
    while audio.size - start > limit:
        window = as_float(audio[start + limit - search : start + limit])
        frames = window[: window.size // frame * frame].reshape(-1, frame)
        quietest = int(np.argmin(np.einsum("ij,ij->i", frames, frames)))
        cut = start + limit - window.size + quietest * frame + frame // 2
        bounds.append((start, cut))
        start = cut
    bounds.append((start, audio.size))
    return bounds


def _segment(raw, offset: float = 0.0) -> Segment:
    words = tuple(
        Word(start=round(float(w.start) + offset, 3), end=round(float(w.end) + offset, 3), text=w.word,
             probability=float(w.probability))  # fmt: skip
        for w in (raw.words or ())
    )
    return Segment(
        start=round(float(raw.start) + offset, 3),
        end=round(float(raw.end) + offset, 3),
        text=raw.text.strip(),
        avg_logprob=float(raw.avg_logprob),
        no_speech_prob=float(raw.no_speech_prob),
        words=words,
        temperature=float(raw.temperature or 0.0),
    )


# --- repetition loops -------------------------------------------------------------------------

_PUNCT = re.compile(r"[^\w]+", re.UNICODE)


def _norm(token: str) -> str:
    return _PUNCT.sub("", token.lower())


def find_loops(tokens: list[str], min_repeats: int, max_ngram: int) -> list[tuple[int, int, int]]:
    """Spans where an n-gram repeats back to back at least *min_repeats* times.

    Returns (start, end, n) token index spans, non-overlapping, longest repeat first.
    """
    loops = []
    i = 0
    while i < len(tokens):
        best = None
        for n in range(1, max_ngram + 1):
            unit = tokens[i : i + n]
            if len(unit) < n or not any(unit):
                break
            repeats = 1
            while tokens[i + repeats * n : i + (repeats + 1) * n] == unit:
                repeats += 1
            if repeats >= min_repeats and (best is None or repeats * n > best[1] - best[0]):
                best = (i, i + repeats * n, n)
        if best:
            loops.append(best)
            i = best[1]
        else:
            i += 1
    return loops


def _word_loop(text: str, min_repeats: int) -> str | None:
    """The repeated unit when a single word is itself a loop, such as '20-20-20-20-20'."""
    match = re.fullmatch(rf"\s*(.{{2,}}?)\1{{{min_repeats - 1},}}(.{{0,3}})", text)
    return match.group(1) if match else None


def guard_repetitions(
    segments: Iterable[Segment], min_repeats: int, max_ngram: int, drop: bool
) -> tuple[list[Segment], int]:
    """Flag (or cut down to one occurrence) repetition loops across the word stream.

    Loops are looked for across segment boundaries because Whisper's loops often continue from
    one 30 s window into the next.
    """
    segments = list(segments)
    flat = [(s, w) for s, seg in enumerate(segments) for w in range(len(seg.words))]
    words = [segments[s].words[w] for s, w in flat]
    keep = [True] * len(words)
    loop = [False] * len(words)
    texts = [w.text for w in words]
    for start, end, n in find_loops([_norm(t) for t in texts], min_repeats, max_ngram):
        for k in range(start, end):
            loop[k] = True
            keep[k] = not drop or k < start + n
    for k, text in enumerate(texts):
        unit = _word_loop(text, min_repeats)
        if unit is not None:
            loop[k] = True
            if drop:
                texts[k] = (" " if text.startswith(" ") else "") + unit.strip(" -")
    rebuilt: list[list[Word]] = [[] for _ in segments]
    for k, (s, _) in enumerate(flat):
        if keep[k]:
            rebuilt[s].append(words[k].model_copy(update={"text": texts[k], "loop": loop[k]}))
    out = []
    for seg, seg_words in zip(segments, rebuilt):
        has_loop = any(w.loop for w in seg_words) or (len(seg.words) != len(seg_words))
        text = "".join(w.text for w in seg_words).strip() if has_loop else seg.text
        out.append(seg.model_copy(update={"words": tuple(seg_words), "text": text,
                                          "repetition_loop": has_loop}))  # fmt: skip
    return out, keep.count(False)


def iter_words(transcript: Transcript) -> Iterator[tuple[int, Word]]:
    for index, segment in enumerate(transcript.segments):
        for word in segment.words:
            yield index, word
