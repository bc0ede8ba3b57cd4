"""Extraction through the real ffmpeg: containers, rates, channels, streams, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emessi_pipeline.stages.audio import MediaError, extract, find_recordings, probe, read_wav

from .conftest import ffmpeg, shared


def _tone(folder: Path, name: str, *args: str) -> Path:
    out = folder / name
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2:sample_rate=48000", *args, str(out))
    return out


def _dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize(
    "name,args",
    [
        ("a.mp4", ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=2", "-shortest", "-c:v", "libx264", "-c:a", "aac"]),
        ("b.mkv", ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=2", "-shortest", "-c:a", "libvorbis"]),
        ("c.webm", ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=2", "-shortest", "-c:v", "libvpx", "-c:a", "libopus"]),
        ("d.m4a", ["-c:a", "aac"]),
        ("e.mp3", []),
        ("f.flac", []),
        ("g.ogg", ["-c:a", "libvorbis"]),
        ("h 8k.wav", ["-ar", "8000"]),
        ("i 44k1 stereo.wav", ["-ar", "44100", "-ac", "2"]),
        ("kokous ääni.wav", []),
    ],
)
def test_extract_gives_16k_mono_pcm_from_each_container(tmp_path, name, args):
    source = _tone(tmp_path, name, *args)
    info = extract(source, tmp_path / "out.wav")
    samples, rate = read_wav(tmp_path / "out.wav")
    assert rate == 16_000
    assert abs(len(samples) / rate - 2.0) < 0.15
    assert abs(_dominant_hz(samples, rate) - 440) < 5
    assert info.audio_streams == 1
    assert info.duration == pytest.approx(2.0, abs=0.15)
    assert info.video_streams == (1 if name[0] in "abc" else 0)


def test_second_audio_stream_is_chosen_on_request(tmp_path):
    two = tmp_path / "two.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=300:duration=2",
        "-f", "lavfi", "-i", "sine=frequency=1200:duration=2",
        "-map", "0:a", "-map", "1:a", "-c:a", "flac", str(two),
    )  # fmt: skip
    for stream, hz in ((0, 300), (1, 1200)):
        info = extract(two, tmp_path / f"s{stream}.wav", audio_stream=stream)
        samples, rate = read_wav(tmp_path / f"s{stream}.wav")
        assert info.audio_streams == 2
        assert abs(_dominant_hz(samples, rate) - hz) < 5
    with pytest.raises(MediaError, match="audio stream 2 requested, the file has 2"):
        extract(two, tmp_path / "s2.wav", audio_stream=2)


def test_stereo_is_downmixed_not_one_channel_dropped(tmp_path):
    source = shared("faster_whisper_testdata", "stereo_diarization.wav")
    extract(source, tmp_path / "mono.wav")
    mono, _ = read_wav(tmp_path / "mono.wav")
    # One speaker per channel: both must be audible in the mono mix, so the mix carries
    # energy across the whole file rather than only where the left speaker talks.
    assert probe(source).channels == 2
    assert np.sqrt(np.mean(mono**2)) > 0.01


@pytest.mark.parametrize(
    "make,cause",
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("this is not a video\n"), "ffmpeg cannot read it"),
    ],
)
def test_unusable_files_raise_one_clear_error_naming_the_file(tmp_path, make, cause):
    bad = tmp_path / "bad.mp4"
    make(bad)
    with pytest.raises(MediaError) as error:
        extract(bad, tmp_path / "out.wav")
    assert str(bad) in str(error.value) and cause in str(error.value)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out.wav").exists()


def test_video_without_audio_is_named_as_such(tmp_path):
    silent_video = tmp_path / "video_only.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=1", "-c:v", "libx264", str(silent_video))
    with pytest.raises(MediaError, match="no audio stream"):
        probe(silent_video)


def test_find_recordings_skips_non_media_and_hidden_folders(tmp_path):
    (tmp_path / ".emessi").mkdir()
    _tone(tmp_path, "x.wav")
    (tmp_path / ".emessi" / "cached.wav").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    _tone(tmp_path / "sub", "y.MP3")
    names = sorted(p.relative_to(tmp_path).as_posix() for p in find_recordings(tmp_path))
    assert names == ["sub/y.MP3", "x.wav"]
