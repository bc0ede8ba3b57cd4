"""CAM++ speaker embedding (3D-Speaker) as a pyannote.audio embedding model.

The network below is vendored from 3D-Speaker (https://github.com/modelscope/3D-Speaker,
``speakerlab/models/campplus``, Apache-2.0, Copyright 3D-Speaker / Alibaba DAMO Academy), by
way of ``senko/camplusplus.py`` in the senko 0.2.2 wheel (MIT, its THIRD_PARTY_LICENSES names
the Apache-2.0 parts); trimmed to inference (no gradient checkpointing), the embedding layer
as in 3D-Speaker (senko's copy adds a ReLU there), otherwise the same layers and parameter names, so the shipped state dict loads unchanged. The Apache-2.0 licence
text is in ``docs/licences/Apache-2.0.txt``.

Input as in 3D-Speaker: an 80-bin Kaldi fbank (25 ms / 10 ms, no dither) of 16 kHz audio,
mean-normalised over the utterance. pyannote asks for one vector per (chunk, local speaker)
with a frame mask of where that speaker talks: the masked fbank frames are gathered into one
utterance, normalised and embedded, as Resemblyzer's wrapper (``embedding.py``) does.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import cached_property
from pathlib import Path

import torch
import torch.nn.functional as F
from pyannote.audio import Model
from torch import nn

SAMPLE_RATE = 16_000
N_MELS = 80
EMBEDDING_SIZE = 192
MIN_FRAMES = 10  # below 0.1 s of a speaker there is no voice to embed


class CampplusEmbedding(Model):
    """CAM++ (192-d) with pyannote's Model interface."""

    def __init__(self, checkpoint: Path | str | None = None):
        super().__init__(sample_rate=SAMPLE_RATE, num_channels=1)
        self.net = CAMPPlus(feat_dim=N_MELS, embedding_size=EMBEDDING_SIZE)
        if checkpoint is not None:
            self.net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
        self.eval()

    @cached_property
    def dimension(self) -> int:
        return EMBEDDING_SIZE

    @staticmethod
    def fbank(waveform: torch.Tensor) -> torch.Tensor:
        """(samples,) -> (frames, 80) log mel filterbank, Kaldi-compatible."""
        from torchaudio.compliance.kaldi import fbank

        return fbank(waveform[None], num_mel_bins=N_MELS, sample_frequency=SAMPLE_RATE, dither=0.0)

    @torch.inference_mode()
    def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        batch = waveforms.shape[0]
        out = torch.full((batch, EMBEDDING_SIZE), float("nan"), device=waveforms.device)
        utterances, owners = [], []
        for b in range(batch):
            feats = self.fbank(waveforms[b, 0])
            if weights is not None:
                keep = F.interpolate(weights[b][None, None].float(), size=feats.shape[0], mode="nearest")[0, 0] > 0.5
                feats = feats[keep]
            if feats.shape[0] < MIN_FRAMES:
                continue
            utterances.append(feats - feats.mean(dim=0, keepdim=True))
            owners.append(b)
        # Utterances of one length share a forward pass; padding would change the statistics
        # pooling (and the context-aware masking), so lengths are never mixed.
        by_length: dict[int, list[int]] = {}
        for i, u in enumerate(utterances):
            by_length.setdefault(u.shape[0], []).append(i)
        for indices in by_length.values():
            embeds = self.net(torch.stack([utterances[i] for i in indices]))
            out[[owners[i] for i in indices]] = F.normalize(embeds, dim=1)
        return out


# ---------------------------------------------------------------- 3D-Speaker CAM++ (Apache-2.0)


class CAMPPlus(nn.Module):
    def __init__(self, feat_dim=80, embedding_size=512, growth_rate=32, bn_size=4, init_channels=128):
        super().__init__()
        self.head = FCM(feat_dim=feat_dim)
        channels = self.head.out_channels
        self.xvector = nn.Sequential(
            OrderedDict([("tdnn", TDNNLayer(channels, init_channels, 5, stride=2, dilation=1, padding=-1))])
        )
        channels = init_channels
        for i, (num_layers, kernel_size, dilation) in enumerate([(12, 3, 1), (24, 3, 2), (16, 3, 2)]):
            block = CAMDenseTDNNBlock(num_layers, channels, growth_rate, bn_size * growth_rate, kernel_size, dilation=dilation)
            self.xvector.add_module(f"block{i + 1}", block)
            channels = channels + num_layers * growth_rate
            self.xvector.add_module(f"transit{i + 1}", TransitLayer(channels, channels // 2, False))
            channels //= 2
        out_nonlinear = nn.Sequential()
        out_nonlinear.add_module("batchnorm", nn.BatchNorm1d(channels))
        out_nonlinear.add_module("relu", nn.ReLU(inplace=True))
        self.xvector.add_module("out_nonlinear", out_nonlinear)
        self.xvector.add_module("stats", StatsPool())
        self.xvector.add_module("dense", DenseLayer(channels * 2, embedding_size, False))

    def forward(self, x):
        x = x.permute(0, 2, 1)  # (B,T,F) => (B,F,T)
        return self.xvector(self.head(x))


class BasicResBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=(stride, 1), bias=False),
                nn.BatchNorm2d(self.expansion * planes),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class FCM(nn.Module):
    def __init__(self, block=BasicResBlock, m_channels=32, feat_dim=80):
        super().__init__()
        self.in_planes = m_channels
        self.conv1 = nn.Conv2d(1, m_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.layer1 = nn.Sequential(block(m_channels, m_channels, stride=2), block(m_channels, m_channels, stride=1))
        self.layer2 = nn.Sequential(block(m_channels, m_channels, stride=2), block(m_channels, m_channels, stride=1))
        self.conv2 = nn.Conv2d(m_channels, m_channels, kernel_size=3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(m_channels)
        self.out_channels = m_channels * (feat_dim // 8)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        out = self.layer2(self.layer1(out))
        out = F.relu(self.bn2(self.conv2(out)))
        shape = out.shape
        return out.reshape(shape[0], shape[1] * shape[2], shape[3])


class StatsPool(nn.Module):
    def forward(self, x, eps=1e-2):
        mean = x.mean(dim=-1)
        std = x.std(dim=-1, unbiased=True) if x.size(-1) > 1 else torch.zeros_like(mean) + eps
        return torch.cat([mean, std], dim=-1)


class TDNNLayer(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=False):
        super().__init__()
        if padding < 0:
            padding = (kernel_size - 1) // 2 * dilation
        self.linear = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                dilation=dilation, bias=bias)  # fmt: skip
        self.nonlinear = nn.Sequential()
        self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(out_channels))
        self.nonlinear.add_module("relu", nn.ReLU(inplace=True))

    def forward(self, x):
        return self.nonlinear(self.linear(x))


class CAMLayer(nn.Module):
    def __init__(self, bn_channels, out_channels, kernel_size, stride, padding, dilation, bias, reduction=2):
        super().__init__()
        self.linear_local = nn.Conv1d(bn_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                      dilation=dilation, bias=bias)  # fmt: skip
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // reduction, 1)
        self.relu = nn.ReLU(inplace=True)
        self.linear2 = nn.Conv1d(bn_channels // reduction, out_channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        y = self.linear_local(x)
        context = x.mean(-1, keepdim=True) + self.seg_pooling(x)
        return y * self.sigmoid(self.linear2(self.relu(self.linear1(context))))

    @staticmethod
    def seg_pooling(x, seg_len=100):
        seg = F.avg_pool1d(x, kernel_size=seg_len, stride=seg_len, ceil_mode=True)
        return seg.unsqueeze(-1).expand(*seg.shape, seg_len).reshape(*seg.shape[:-1], -1)[..., : x.shape[-1]]


class CAMDenseTDNNLayer(nn.Module):
    def __init__(self, in_channels, out_channels, bn_channels, kernel_size, stride=1, dilation=1, bias=False):
        super().__init__()
        self.nonlinear1 = nn.Sequential()
        self.nonlinear1.add_module("batchnorm", nn.BatchNorm1d(in_channels))
        self.nonlinear1.add_module("relu", nn.ReLU(inplace=True))
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = nn.Sequential()
        self.nonlinear2.add_module("batchnorm", nn.BatchNorm1d(bn_channels))
        self.nonlinear2.add_module("relu", nn.ReLU(inplace=True))
        padding = (kernel_size - 1) // 2 * dilation
        self.cam_layer = CAMLayer(bn_channels, out_channels, kernel_size, stride, padding, dilation, bias)

    def forward(self, x):
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class CAMDenseTDNNBlock(nn.ModuleList):
    def __init__(self, num_layers, in_channels, out_channels, bn_channels, kernel_size, stride=1, dilation=1, bias=False):
        super().__init__()
        for i in range(num_layers):
            layer = CAMDenseTDNNLayer(in_channels + i * out_channels, out_channels, bn_channels, kernel_size,
                                      stride, dilation, bias)  # fmt: skip
            self.add_module(f"tdnnd{i + 1}", layer)

    def forward(self, x):
        for layer in self:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class TransitLayer(nn.Module):
    def __init__(self, in_channels, out_channels, bias=True):
        super().__init__()
        self.nonlinear = nn.Sequential()
        self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(in_channels))
        self.nonlinear.add_module("relu", nn.ReLU(inplace=True))
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x):
        return self.linear(self.nonlinear(x))


class DenseLayer(nn.Module):
    def __init__(self, in_channels, out_channels, bias=False):
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=bias)
        self.nonlinear = nn.Sequential()
        # 3D-Speaker's config_str "batchnorm_": batch norm without affine and without ReLU
        # (senko's copy adds a ReLU, which would zero half of every embedding's coordinates).
        self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(out_channels, affine=False))

    def forward(self, x):
        if x.dim() == 2:
            x = self.linear(x.unsqueeze(dim=-1)).squeeze(dim=-1)
        else:
            x = self.linear(x)
        return self.nonlinear(x)
