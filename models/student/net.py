"""The student network: a depthwise-separable backbone, a two-level FPN, and a CenterNet-style head.

~0.1 M parameters. One output level at stride 8: a per-class heatmap (centre likelihood, trained to the
teacher's score) and left/top/right/bottom distances. The exported graph also emits the heatmap's
3x3 max-pool, so the runtime finds peaks with one comparison instead of a Python loop.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

STRIDE = 8
NUM_CLASSES = 2  # contracts.labels.PRODUCT_LABELS: person, vehicle


def _dw(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class StudentNet(nn.Module):
    def __init__(self, width: int = 64, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        self.s4 = nn.Sequential(_dw(16, 32, 2), _dw(32, 32, 1))
        self.s8 = nn.Sequential(_dw(32, 64, 2), _dw(64, 64, 1))
        self.s16 = nn.Sequential(_dw(64, 96, 2), _dw(96, 96, 1))
        self.s32 = nn.Sequential(_dw(96, 128, 2), _dw(128, 128, 1))
        self.lat8 = nn.Conv2d(64, width, 1)
        self.lat16 = nn.Conv2d(96, width, 1)
        self.lat32 = nn.Conv2d(128, width, 1)
        self.head = _dw(width, width, 1)
        self.heat = nn.Conv2d(width, num_classes, 1)
        self.box = nn.Conv2d(width, 4, 1)
        nn.init.constant_(self.heat.bias, -4.6)  # start near p=0.01: most cells are background

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw outputs for training: heatmap logits (N, C, h, w) and log-distances (N, 4, h, w)."""
        c8 = self.s8(self.s4(self.stem(x)))
        c16 = self.s16(c8)
        c32 = self.s32(c16)
        p16 = self.lat16(c16) + F.interpolate(self.lat32(c32), scale_factor=2.0, mode="nearest")
        p8 = self.lat8(c8) + F.interpolate(p16, scale_factor=2.0, mode="nearest")
        h = self.head(p8)
        return self.heat(h), self.box(h)


class ExportWrapper(nn.Module):
    """What runs at the edge: uint8 BGR frames (N, H, W, 3) in, normalised inside the graph (cheaper
    in onnxruntime than in numpy); probabilities, their peaks, and distances in input pixels out."""

    def __init__(self, net: StudentNet):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor):
        x = images.permute(0, 3, 1, 2).flip(1).float() * (1.0 / 255.0)  # NHWC BGR uint8 -> NCHW RGB
        logits, log_dist = self.net(x)
        heat = torch.sigmoid(logits)
        peaks = F.max_pool2d(heat, 3, stride=1, padding=1)
        return heat, peaks, torch.exp(log_dist.clamp(max=8.0)) * STRIDE
