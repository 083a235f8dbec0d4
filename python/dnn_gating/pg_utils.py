"""Precision gating's modules, as the original's `utils/pg_utils.py` names
them, computed by the C++ library: `PactReLU`, `TorchQuantize`,
`TorchTruncate`, `QuantizedConv2d`, `QuantizedLinear`, `PGConv2d`.

Constructors, attributes, state-dict keys and the counters `num_out` and
`num_high` are the original's, so `import dnn_gating.pg_utils as q` replaces
`import utils.pg_utils as q` in the original's model files, and state dicts
move between the two unchanged."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._cpp import CppLayer, check_plain_conv, pair

__all__ = ["PactReLU", "TorchQuantize", "TorchTruncate", "QuantizedConv2d", "QuantizedLinear",
           "PGConv2d"]


def quantize(x, bits):
    """Q_bits(x) with its straight-through gradient (0 bits: x itself)."""
    return torch.ops.dnn_gating.quantize(x, int(bits))


def truncate(x, b, bh):
    """T_{b,bh}(x): the bh most significant of b bits, straight-through."""
    return torch.ops.dnn_gating.truncate(x, int(b), int(bh))


class PactReLU(nn.Module):
    """clamp(x, 0, upper_bound) with the bound learned (PACT)."""

    def __init__(self, upper_bound=6.0):
        super().__init__()
        self.upper_bound = nn.Parameter(torch.tensor(upper_bound))

    def forward(self, input):
        return torch.ops.dnn_gating.pact_relu(input, self.upper_bound)


class TorchQuantize(nn.Module):
    """Q_bits: identity for 0 bits, {-1, +1} for 1 bit, else symmetric uniform."""

    def __init__(self, bits=0):
        super().__init__()
        if bits < 0:
            raise ValueError(f"TorchQuantize: bits must be 0 or more, got {bits}")
        self.bits = bits

    def forward(self, input):
        return quantize(input, self.bits)


class TorchTruncate(nn.Module):
    """T_{b,bh}: a b-bit fixed-point value keeping its bh most significant bits."""

    def __init__(self, b=8, bh=4):
        super().__init__()
        if not 0 < bh < b:
            raise ValueError(f"TorchTruncate: needs 0 < bh < b, got b={b} bh={bh}")
        self.b = b
        self.bh = bh

    def forward(self, input):
        return truncate(input, self.b, self.bh)


def _rescale(wbits, fan_in):
    return math.sqrt(1.0 / fan_in) if wbits == 1 else 1.0


class QuantizedConv2d(CppLayer, nn.Conv2d):
    """conv2d(Q_abits(x), Q_wbits(W) * r) (+ bias), r = sqrt(1/(k*k*in)) for binary weights.

    Evaluated without gradients on the CPU it computes in integers where the
    bits allow, as the C++ trainers do. Dilation or groups other than 1
    compute with PyTorch's convolution."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode='zeros', wbits=0, abits=0):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode)
        self.wbits = wbits
        self.abits = abits
        self.weight_rescale = _rescale(wbits, self.kernel_size[0] * self.kernel_size[1] * in_channels)
        self._library_computes = (tuple(self.dilation) == (1, 1) and groups == 1
                                  and padding_mode == 'zeros' and not isinstance(self.padding, str))
        if self._library_computes:
            self._cpp()  # refuses bad settings now, with the library's message
        else:
            quantize(torch.zeros(1), wbits), quantize(torch.zeros(1), abits)

    def _make_cpp(self):
        return torch.classes.dnn_gating.QuantizedConv2d(
            self.in_channels, self.out_channels, pair(self.kernel_size), pair(self.stride),
            pair(self.padding), self.wbits, self.abits)

    def forward(self, input):
        if not self._library_computes:
            return F.conv2d(quantize(input, self.abits),
                            quantize(self.weight, self.wbits) * self.weight_rescale, self.bias,
                            self.stride, self.padding, self.dilation, self.groups)
        y = self._cpp().forward(input, self.weight, self.training)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y


class QuantizedLinear(nn.Linear):
    """linear(Q_abits(x), Q_wbits(W) * r, b), r = sqrt(1/in) for binary weights."""

    def __init__(self, in_features, out_features, bias=True, wbits=0, abits=0):
        super().__init__(in_features, out_features, bias)
        quantize(torch.zeros(1), wbits), quantize(torch.zeros(1), abits)
        self.wbits = wbits
        self.abits = abits
        self.weight_rescale = _rescale(wbits, in_features)

    def forward(self, input):
        return F.linear(quantize(input, self.abits),
                        quantize(self.weight, self.wbits) * self.weight_rescale, self.bias)


class PGConv2d(CppLayer, nn.Conv2d):
    """Precision gating: out = out_msb + mask * out_lsb, the mask opening where
    sigmoid(alpha * (out_msb - threshold)) > 0.5.

    `threshold` [1, out, 1, 1] starts at 0; after each forward pass `num_out`
    counts the outputs and `num_high` those computed at high precision.
    Evaluated without gradients on the CPU it adds the LSB part only where
    the gate opens, in integers where the bits allow."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=False, padding_mode='zeros', wbits=8, abits=8, pred_bits=4,
                 sparse_bp=False, alpha=5):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode)
        check_plain_conv("PGConv2d", self, bias_allowed=False)
        self.wbits = wbits
        self.abits = abits
        self.pred_bits = pred_bits
        self.sparse_bp = sparse_bp
        self.alpha = alpha
        self.weight_rescale = _rescale(wbits, self.kernel_size[0] * self.kernel_size[1] * in_channels)
        self.threshold = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        self.num_out = 0
        self.num_high = 0
        self._cpp()  # refuses bad settings now, with the library's message

    def _make_cpp(self):
        return torch.classes.dnn_gating.PGConv2d(
            self.in_channels, self.out_channels, pair(self.kernel_size), pair(self.stride),
            pair(self.padding), self.wbits, self.abits, self.pred_bits, bool(self.sparse_bp),
            float(self.alpha))

    def forward(self, input):
        layer = self._cpp()
        y = layer.forward(input, self.weight, self.threshold, self.training, float(self.alpha))
        self.num_out, self.num_high = layer.counts()
        return y
