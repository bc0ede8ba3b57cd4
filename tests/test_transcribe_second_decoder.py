"""Blocks from the seed (asr.blocks_from_seed): each block's words depend on its own audio and
the settings alone, so a second decoder that takes blocks once diarisation frees a core gives
the same transcript as one decoder doing them all."""

from __future__ import annotations

import threading

from faster_whisper.audio import decode_audio

from emessi_pipeline.config import AsrConfig, load_profile
from emessi_pipeline.runs.chain import settings
from emessi_pipeline.stages.transcribe import SAMPLE_RATE, Whisper, block_bounds, resolve_model, transcribe

from .conftest import shared


class LoadsByThread(Whisper):
    """The real model, counting which threads loaded one (the second decoder loads its own, on
    an instance of its own: the list is the class's)."""

    loads: list[str] = []

    def load(self):
        self.loads.append(threading.current_thread().name)
        return super().load()


def _words(transcript, offset: float = 0.0) -> list[tuple]:
    return [(w.text, round(w.start - offset, 3), round(w.end - offset, 3))
            for s in transcript.segments for w in s.words]  # fmt: skip


def test_two_decoders_give_the_words_of_one_and_each_block_is_its_own():
    # English decoded as Finnish: windows fall back to sampling, so a generator that went on
    # from one block to the next would give the later blocks other words.
    audio = decode_audio(str(shared("ami", "dev01.wav")), SAMPLE_RATE)
    # Blocks of at most 12 s; greedy with one fallback temperature, for time.
    config = AsrConfig(block_minutes=0.2, beam_size=1, temperature=(0.0, 0.6))
    bounds = block_bounds(audio, SAMPLE_RATE, config.block_minutes * 60)
    assert len(bounds) >= 5
    model = LoadsByThread(config, resolve_model(config, allow_downloads=False))

    one = transcribe(model, audio, config)  # no spare core: the first decoder does every block
    assert "emessi-asr-second" not in model.loads
    free = threading.Event()
    free.set()  # a core free from the start: a second decoder takes blocks beside the first
    two = transcribe(model, audio, config, spare_core=free)
    assert "emessi-asr-second" in model.loads
    assert _words(one) and _words(two) == _words(one)
    assert any(s.temperature > 0 for s in one.segments)  # the fallback did sample

    # A block with words, after blocks that sampled: what a fresh model gives for it alone.
    def words_in(start, end):
        return [w for w in _words(one) if start / SAMPLE_RATE - 1e-6 <= w[1] < end / SAMPLE_RATE]

    def sampled_before(start):
        return any(s.temperature > 0 and s.end <= start / SAMPLE_RATE for s in one.segments)

    start, end = [b for b in bounds if words_in(*b) and sampled_before(b[0])][-1]
    alone = transcribe(Whisper(config, model.resolved), audio[start:end], config)
    offset = start / SAMPLE_RATE
    assert [(t, round(a + offset, 3), round(b + offset, 3)) for t, a, b in _words(alone)] == words_in(start, end)


def test_the_old_way_leaves_the_cache_keys_made_before_it_alone():
    profile = load_profile("default")
    assert profile.asr.blocks_from_seed is True and settings(profile, "asr")["blocks_from_seed"] is True
    old = profile.model_copy(update={"asr": profile.asr.model_copy(update={"blocks_from_seed": False})})
    assert "blocks_from_seed" not in settings(old, "asr")


def test_whisper_alone_gets_a_second_decoder_from_the_start_when_the_cores_allow():
    import os
    from types import SimpleNamespace

    from emessi_pipeline.runs.chain import Chain

    def spare(threads):
        profile = load_profile("default", {"asr.cpu_threads": threads})
        return Chain._cores_for_two_decoders(SimpleNamespace(profile=profile))

    cores = len(os.sched_getaffinity(0))
    assert spare(0) is None  # CTranslate2 takes every core already
    assert (spare(1) is not None and spare(1).is_set()) == (cores >= 2)
    assert spare(cores) is None
