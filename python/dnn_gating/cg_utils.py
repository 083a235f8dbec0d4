"""Channel gating's module, as the original's `utils/cg_utils.py` names it,
computed by the C++ library: `CGConv2d` and `channel_shuffle`.

Constructor, attributes, state-dict keys (`weight`, `mask`, `threshold`,
`bn.*`) and the counters `num_out` and `num_full` are the original's, so
`import dnn_gating.cg_utils as cg` replaces `import utils.cg_utils as cg` in
the original's model files, and state dicts move between the two unchanged."""

import torch
import torch.nn as nn

from ._cpp import CppLayer, check_plain_conv, pair

__all__ = ["CGConv2d", "channel_shuffle"]


def channel_shuffle(x, groups):
    """[N, g, C/g, H, W] -> swap 1, 2 -> [N, C, H, W]."""
    n, c, h, w = x.size()
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, -1, h, w)


class CGConv2d(CppLayer, nn.Conv2d):
    """Channel gating: y = Y * d + Yp * (1 - d), Yp the sum over the base
    path's channels (1/p of them; block-diagonal with use_group), Y the full
    sum, d = [sigmoid(alpha * (bn(Yp) - threshold)) > 0.5].

    `threshold` [1, out, 1, 1] starts at `th`; `mask` marks the base path's
    weights (a parameter that takes no gradient, as in the original); `bn`
    normalises the gate's input without affine parameters. After each forward
    pass `num_out` counts the outputs and `num_full` those that summed every
    channel. Evaluated without gradients on the CPU it computes the rest of
    each sum only where (or, when faster, in one pass with) the gates open."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=False, padding_mode='zeros', sparse_bp=False, use_group=False,
                 shuffle=False, p=4, th=-6.0, alpha=2.0):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode)
        check_plain_conv("CGConv2d", self, bias_allowed=False)
        if not isinstance(p, int) or p < 1:
            raise ValueError(f"CGConv2d: p must be a positive integer, got {p!r}")
        self.th = th
        self.alpha = alpha
        self.p = p
        self.use_group = use_group
        self.sparse_bp = sparse_bp
        self.bn = nn.BatchNorm2d(out_channels, affine=False)
        self.shuffle = shuffle

        in_chunk = in_channels // p
        out_chunk = out_channels // p
        mask = torch.zeros(out_channels, in_channels, *self.kernel_size)
        if use_group:
            for i in range(p):
                mask[i * out_chunk:(i + 1) * out_chunk, i * in_chunk:(i + 1) * in_chunk] = 1
        else:
            mask[:, 0:in_chunk] = 1
        self.mask = nn.Parameter(mask, requires_grad=False)
        self.threshold = nn.Parameter(th * torch.ones(1, out_channels, 1, 1))
        self.num_out = 0
        self.num_full = 0
        self._cpp()  # refuses bad settings now, with the library's message

    def _make_cpp(self):
        return torch.classes.dnn_gating.CGConv2d(
            self.in_channels, self.out_channels, pair(self.kernel_size), pair(self.stride),
            pair(self.padding), self.p, float(self.alpha), bool(self.use_group),
            bool(self.shuffle), bool(self.sparse_bp))

    def forward(self, input):
        layer = self._cpp()
        bn = self.bn
        y = layer.forward(input, self.weight, self.mask, self.threshold, bn.running_mean,
                          bn.running_var, bn.num_batches_tracked, self.training, bn.training,
                          float(self.alpha), float(bn.eps),
                          None if bn.momentum is None else float(bn.momentum))
        self.num_out, self.num_full = layer.counts()
        return y

    def set_skipping(self, skipping):
        """How evaluation skips closed gates: 'fastest' (default), 'never', 'always'."""
        self._cpp().set_skipping(skipping)

    def last_way(self):
        """How the last forward pass computed: 'every output', 'open outputs',
        'one pass' or 'open tiles'."""
        return self._cpp().last_way()
