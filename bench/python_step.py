#!/usr/bin/env python3
"""The original's training step in Python: a ResNet-20 built from the
extension's modules (dnn_gating) against the same network built from modules
written in plain PyTorch operations, as the original's utils/pg_utils.py and
utils/cg_utils.py compute (docs/FORMULAS.md), and against the float network.

    PYTHONPATH=build/python python3 bench/python_step.py [--steps N] [--batch B]

Prints milliseconds per step (median of N after three warm-up steps) and each
ratio to the float step, measured in this one run. The two gated networks
compute the same formulas (the golden tests hold both to the original); at
random initialisation their losses may still differ in float32, where
summation order moves a few 3-bit quantizer roundings and gate decisions.
"""

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import dnn_gating
import dnn_gating.cg_utils as cg
import dnn_gating.pg_utils as q


class _Ste(torch.autograd.Function):
    """round or floor with a straight-through gradient."""

    @staticmethod
    def forward(ctx, x, floor):
        return torch.floor(x) if floor else torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g, None


class _Clamp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        return torch.clamp(x, lo, hi)

    @staticmethod
    def backward(ctx, g):
        return g, None, None


def plain_quantize(x, bits):
    if bits == 0:
        return x
    if bits == 1:
        return _Ste.apply((_Clamp.apply(x, -1.0, 1.0) + 1.0) / 2.0, False) * 2.0 - 1.0
    sign = torch.sign(x).detach()
    scale = x.abs().max().detach() + 1e-7
    levels = 2.0 ** bits - 1.0
    return _Ste.apply(_Clamp.apply(x.abs() / scale, 0.0, 1.0) * levels, False) / levels * scale * sign


def plain_truncate(x, b, bh):
    sign = torch.sign(x).detach()
    scale = x.abs().max().detach() + 1e-7
    r = _Ste.apply(_Clamp.apply(x.abs() / scale, 0.0, 1.0) * (2.0 ** b - 1.0), False)
    t = _Ste.apply(r / 2.0 ** (b - bh), True) * 2.0 ** (b - bh) / (2.0 ** b - 1.0)
    return t * scale * sign


class _Gate(torch.autograd.Function):
    """(input > threshold) as float; the gradient passes (where input >= threshold if sparse)."""

    @staticmethod
    def forward(ctx, x, threshold, sparse):
        ctx.save_for_backward(x)
        ctx.threshold, ctx.sparse = threshold, sparse
        return (x > threshold).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g.masked_fill(x < ctx.threshold, 0) if ctx.sparse else g), None, None


class _Pact(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, u):
        ctx.save_for_backward(x, u)
        return torch.clamp(x, 0, u.item())

    @staticmethod
    def backward(ctx, g):
        x, u = ctx.saved_tensors
        return g.masked_fill((x < 0) | (x > u), 0), g.masked_fill(x <= u, 0).sum()


class PlainPact(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.upper_bound = layer.upper_bound

    def forward(self, x):
        return _Pact.apply(x, self.upper_bound)


class PlainQuantizedConv(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        m = self.layer
        return F.conv2d(plain_quantize(x, m.abits), plain_quantize(m.weight, m.wbits) * m.weight_rescale,
                        m.bias, m.stride, m.padding)


class PlainPG(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        m = self.layer
        w = plain_quantize(m.weight, m.wbits) * m.weight_rescale
        hi = plain_truncate(x, m.abits, m.pred_bits)
        msb = F.conv2d(hi, w, None, m.stride, m.padding)
        mask = _Gate.apply(torch.sigmoid(m.alpha * (msb - m.threshold)), 0.5, m.sparse_bp)
        lsb = F.conv2d(plain_quantize(x, m.abits) - hi, w, None, m.stride, m.padding)
        return msb + mask * lsb


class PlainCG(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        m = self.layer
        if m.shuffle:
            x = cg.channel_shuffle(x, m.p)
        partial = F.conv2d(x, m.weight * m.mask, None, m.stride, m.padding)
        d = _Gate.apply(torch.sigmoid(m.alpha * (m.bn(partial) - m.threshold)) - 0.5, 0.0,
                        m.sparse_bp)
        full = F.conv2d(x, m.weight, None, m.stride, m.padding)
        return full * d + partial * (1 - d)


def plain_copy(model):
    """The same network (shared parameters) with every extension module
    computed in plain PyTorch operations."""
    for name, m in list(model.named_modules()):
        kind = {q.PGConv2d: PlainPG, cg.CGConv2d: PlainCG, q.QuantizedConv2d: PlainQuantizedConv,
                q.PactReLU: PlainPact}.get(type(m))
        if kind is not None:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, kind(m))
    return model


def step_times(model, x, y, steps, kind):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    model.train()
    times = []
    for i in range(steps + 3):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        if kind in ("pg", "cg"):
            loss = loss + dnn_gating.gating_loss(model, kind, 1.0)
        loss.backward()
        optimizer.step()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    configs = [
        ("float", "float", {}),
        ("quantized w8 a3 PACT", "quantized", dict(wbits=8, abits=3, pact=True)),
        ("PG w8 a3 pb2 PACT sparse_bp", "pg",
         dict(wbits=8, abits=3, pred_bits=2, pact=True, sparse_bp=True)),
        ("CG p4 grouped sparse_bp", "cg", dict(partitions=4, use_group=True, sparse_bp=True)),
    ]
    print(f"training step, ResNet-20, batch {args.batch}, {torch.get_num_threads()} threads, "
          f"median of {args.steps}")
    print(f"{'model':30} {'ours ms':>9} {'plain ms':>9} {'ours/float':>11} {'plain/float':>12} "
          f"{'plain/ours':>11}")
    torch.manual_seed(1)
    float_ms = step_times(dnn_gating.models.resnet20("float"), x, y, args.steps, "float")
    print(f"{'float (plain PyTorch)':30} {'':>9} {float_ms:9.1f} {'':>11} {1.0:11.2f}x")
    for label, kind, settings in configs[1:]:
        torch.manual_seed(1)
        ours = dnn_gating.models.resnet20(kind, **settings)
        state = {k: v.clone() for k, v in ours.state_dict().items()}
        ours_ms = step_times(ours, x, y, args.steps, kind)
        plain = dnn_gating.models.resnet20(kind, **settings)
        plain.load_state_dict(state)
        plain_ms = step_times(plain_copy(plain), x, y, args.steps, kind)
        print(f"{label:30} {ours_ms:9.1f} {plain_ms:9.1f} {ours_ms / float_ms:10.2f}x "
              f"{plain_ms / float_ms:11.2f}x {plain_ms / ours_ms:10.2f}x")

if __name__ == "__main__":
    main()
