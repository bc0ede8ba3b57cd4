"""The Resemblyzer GE2E speaker encoder as a pyannote.audio embedding model.

pyannote's diarisation pipeline asks its embedding model for one vector per (chunk, local
speaker), passing the chunk's waveform and a frame mask of where that speaker talks. GE2E
was trained on 1.6 s partial utterances of a (non-log) 40-band mel spectrogram, so the
speaker's masked frames are gathered, cut into 1.6 s partials with 50 % overlap, embedded,
and averaged, as Resemblyzer's own ``embed_utterance`` does for a whole utterance.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pyannote.audio import Model
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

SAMPLE_RATE = 16_000
N_FFT = 400  # 25 ms window
HOP = 160  # 10 ms step
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
PARTIAL_STEP = 80
MIN_FRAMES = 10  # below 0.1 s of a speaker there is no voice to embed
TARGET_DBFS = -30.0


def _melscale_fbanks() -> torch.Tensor:
    # Slaney-style mel filters, the librosa default Resemblyzer was trained with.
    from torchaudio.functional import melscale_fbanks

    return melscale_fbanks(
        N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE, norm="slaney", mel_scale="slaney"
    )


class ResemblyzerEmbedding(Model):
    """GE2E speaker encoder (3-layer LSTM, 256-d output) with pyannote's Model interface."""

    def __init__(self, checkpoint: Path | str | None = None, partial_frames: int = PARTIAL_FRAMES,
                 partial_step: int = PARTIAL_STEP):  # fmt: skip
        super().__init__(sample_rate=SAMPLE_RATE, num_channels=1)
        if not 0 < partial_step <= partial_frames:
            raise ValueError("partial_step must be in (0, partial_frames]")
        self.partial_frames, self.partial_step = int(partial_frames), int(partial_step)
        self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)
        self.register_buffer("fbanks", _melscale_fbanks(), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        if checkpoint is not None:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model_state"]
            self.load_state_dict(
                {k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))}, strict=False
            )
        self.eval()

    @cached_property
    def dimension(self) -> int:
        return 256

    def mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, frames, 40) mel power spectrogram."""
        spec = torch.stft(
            waveforms,
            N_FFT,
            HOP,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        power = spec.abs().pow(2).transpose(1, 2)
        return power @ self.fbanks

    def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        if waveforms.shape[-1] < N_FFT:
            raise ValueError("waveform shorter than one 25 ms analysis window")
        mels = self.mel(waveforms[:, 0])
        frame_energy = self.mel_frame_energy(waveforms[:, 0], mels.shape[1])
        batch, frames, _ = mels.shape
        if weights is None:
            keep = torch.ones(batch, frames, dtype=torch.bool, device=mels.device)
        else:
            keep = F.interpolate(weights[:, None].float(), size=frames, mode="nearest")[:, 0] > 0.5
        partials, owners = [], []
        for b in range(batch):
            selected = mels[b][keep[b]]
            if selected.shape[0] < MIN_FRAMES:
                continue
            gain = self._gain(frame_energy[b][keep[b]])
            for piece in _partials(selected * gain, self.partial_frames, self.partial_step):
                partials.append(piece)
                owners.append(b)
        out = torch.full((batch, 256), float("nan"), device=mels.device)
        if partials:
            embeds = self._embed_partials(partials)
            owners_t = torch.tensor(owners, device=mels.device)
            summed = torch.zeros(batch, 256, device=mels.device).index_add_(0, owners_t, embeds)
            present = torch.unique(owners_t)
            out[present] = F.normalize(summed[present], dim=1)
        return out

    @staticmethod
    def mel_frame_energy(waveforms: torch.Tensor, frames: int) -> torch.Tensor:
        padded = F.pad(waveforms, (N_FFT // 2, N_FFT // 2))
        windows = padded.unfold(-1, N_FFT, HOP)[:, :frames]
        return windows.pow(2).mean(-1)

    @staticmethod
    def _gain(energy: torch.Tensor) -> torch.Tensor:
        # Resemblyzer raises quiet speech to -30 dBFS (never lowers it); the mel is a power
        # spectrum, so the waveform gain enters squared.
        dbfs = 10 * torch.log10(energy.mean().clamp_min(1e-10))
        return torch.clamp(10 ** ((TARGET_DBFS - dbfs) / 10), min=1.0)

    def _embed_partials(self, partials: list[torch.Tensor]) -> torch.Tensor:
        lengths = torch.tensor([p.shape[0] for p in partials])
        padded = nn.utils.rnn.pad_sequence(partials, batch_first=True)
        packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.lstm(packed)
        return F.normalize(F.relu(self.linear(hidden[-1])), dim=1)


def _partials(frames: torch.Tensor, length: int = PARTIAL_FRAMES, step: int = PARTIAL_STEP) -> list[torch.Tensor]:
    total = frames.shape[0]
    if total <= length:
        return [frames]
    starts = list(range(0, total - length + 1, step))
    if starts[-1] + length < total:
        starts.append(total - length)
    return [frames[s : s + length] for s in starts]


class SpeakerEmbedder:
    """One vector per stretch of speech, by a named model: what voiceprints are made of.

    *identity* names the model and its weights (``name@sha256:…``): vectors of two embedders
    live in different spaces, so a voiceprint keeps the identity it was made with and is only
    compared with vectors of the same one.
    """

    def __init__(self, identity: str, model: nn.Module, dimension: int):
        self.identity, self.model, self.dimension = identity, model, dimension

    def embed(self, stretches: list[np.ndarray]) -> np.ndarray:
        """(n, dimension) unit vectors for *n* 16 kHz mono float waveforms; a row of NaN where a
        stretch holds too little speech to embed."""
        out = np.full((len(stretches), self.dimension), np.nan, dtype=np.float32)
        with torch.inference_mode():
            for i, samples in enumerate(stretches):
                if len(samples) < N_FFT:
                    continue
                vector = self.model(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None, None])
                out[i] = vector[0].cpu().numpy()
        return out


@lru_cache(maxsize=2)
def speaker_embedder(name: str) -> SpeakerEmbedder:
    """The speaker embedder a profile names (``voiceprints.embedding``), loaded from the shipped
    models: the one place another embedder is added (a ``name`` branch returning its own model).
    Kept loaded: the workbench learns a voice on every assignment."""
    from . import models

    if name == "resemblyzer-ge2e":
        folder = models.resolve_shipped(name)
        return SpeakerEmbedder(models.SHIPPED_MODELS[name].identity, ResemblyzerEmbedding(folder / "pretrained.pt"), 256)
    models.embedder_identity(name)  # says which names there are
    raise models.MissingModelError(f"no speaker embedder {name!r} for voiceprints")
