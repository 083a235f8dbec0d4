"""The CIFAR ResNets of dnn-gating (option-A shortcuts) built from this
package's modules, with the original's state-dict keys: float, quantized,
precision-gated, channel-gated and post-activated channel-gated."""

import torch.nn as nn
import torch.nn.functional as F

from .cg_utils import CGConv2d
from .pg_utils import PactReLU, PGConv2d, QuantizedConv2d

__all__ = ["ResNet", "resnet20", "KINDS"]

KINDS = ("float", "quantized", "pg", "cg", "cg-postact")


class _Shortcut(nn.Module):
    """x itself, or every second row and column with planes/4 zero channels each side."""

    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.pad = planes // 4 if stride != 1 or in_planes != planes else None

    def forward(self, x):
        if self.pad is None:
            return x
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class _Block(nn.Module):
    def __init__(self, in_planes, planes, stride, kind, s):
        super().__init__()
        self.postact = kind == "cg-postact"

        def conv(cin, cout, st, gated):
            geometry = dict(kernel_size=3, stride=st, padding=1, bias=False)
            if kind == "quantized" or (kind == "pg" and not gated):
                return QuantizedConv2d(cin, cout, wbits=s["wbits"], abits=s["abits"], **geometry)
            if kind == "pg":
                return PGConv2d(cin, cout, wbits=s["wbits"], abits=s["abits"],
                                pred_bits=s["pred_bits"], sparse_bp=s["sparse_bp"], **geometry)
            if kind.startswith("cg") and gated:
                return CGConv2d(cin, cout, p=s["partitions"], th=s["ginit"],
                                alpha=s["cg_alpha"], use_group=s["use_group"],
                                shuffle=s["shuffle"], sparse_bp=s["sparse_bp"], **geometry)
            return nn.Conv2d(cin, cout, **geometry)

        self.conv1 = conv(in_planes, planes, stride, True)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 1, self.postact)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _Shortcut(in_planes, planes, stride)
        self.relu = PactReLU() if s["pact"] else nn.ReLU()

    def forward(self, x):
        if self.postact:
            out = F.relu(self.bn1(self.conv1(x)))
            out = F.relu(self.bn2(self.conv2(out)))
            return out + self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A 6n+2-layer CIFAR ResNet whose blocks use the convolutions of `kind`."""

    def __init__(self, kind="float", depth=20, num_classes=10, in_channels=3, wbits=0, abits=0,
                 pact=False, pred_bits=4, sparse_bp=False, partitions=4, ginit=0.0,
                 cg_alpha=2.0, use_group=False, shuffle=False):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"ResNet: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"ResNet: depth must be 6n+2 (20, 32, 44, ...), got {depth}")
        if pact and kind not in ("quantized", "pg"):
            raise ValueError("ResNet: pact applies to the quantized and pg kinds only")
        s = dict(wbits=wbits, abits=abits, pact=pact, pred_bits=pred_bits, sparse_bp=sparse_bp,
                 partitions=partitions, ginit=ginit, cg_alpha=cg_alpha, use_group=use_group,
                 shuffle=shuffle)
        # The arguments that rebuild this model: ResNet(**model.settings).
        self.settings = dict(kind=kind, depth=depth, num_classes=num_classes,
                             in_channels=in_channels, **s)
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        for i, (planes, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
            blocks = []
            for j in range(n):
                blocks.append(_Block(in_planes, planes, stride if j == 0 else 1, kind, s))
                in_planes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, num_classes)
        self.relu = PactReLU() if pact else nn.ReLU()
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


def resnet20(kind="float", **settings):
    """ResNet-20 of `kind` ("float", "quantized", "pg", "cg", "cg-postact");
    settings as ResNet's (wbits, abits, pact, pred_bits, sparse_bp,
    partitions, ginit, use_group, ...)."""
    return ResNet(kind, depth=20, **settings)
