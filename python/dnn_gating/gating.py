"""Gating any torch.nn model, and what a training loop needs of the gated
layers in it: the gating loss and the gate counters."""

import torch
import torch.nn as nn

from . import cg_utils, pg_utils

__all__ = ["gate", "gated_layers", "gating_loss", "total_counts", "papers_choice"]

_GATED = (pg_utils.PGConv2d, cg_utils.CGConv2d)
_LIBRARY_CONVS = _GATED + (pg_utils.QuantizedConv2d,)


def gated_layers(model):
    """(name, layer) of every PGConv2d and CGConv2d in the model, in order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _GATED)]


def total_counts(model):
    """(num_out, num_on) summed over the gated layers' last forward passes
    (num_on: PG's num_high, CG's num_full)."""
    out = on = 0
    for _, layer in gated_layers(model):
        out += layer.num_out
        on += layer.num_high if isinstance(layer, pg_utils.PGConv2d) else layer.num_full
    return out, on


def gating_loss(model, kind, gtarget, sigma=0.001, weight=1e-4):
    """The original trainers' gating losses over every gated layer's threshold:
    kind "pg": sigma * sum ||threshold - gtarget||_2; kind "cg":
    weight * sum (threshold - gtarget)^2."""
    if kind not in ("pg", "cg"):
        raise ValueError(f"gating_loss: kind must be 'pg' or 'cg', got {kind!r}")
    total = None
    for _, layer in gated_layers(model):
        diff = layer.threshold - gtarget
        term = sigma * diff.norm() if kind == "pg" else weight * diff.pow(2).sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return total


def papers_choice(name, conv, first):
    """Every convolution but the model's first, the 1x1 ones (shortcuts) and
    the grouped or dilated ones."""
    return (not first and tuple(conv.kernel_size) != (1, 1) and conv.groups == 1
            and tuple(conv.dilation) == (1, 1))


def _replacement(kind, conv, settings):
    geometry = dict(in_channels=conv.in_channels, out_channels=conv.out_channels,
                    kernel_size=conv.kernel_size, stride=conv.stride, padding=conv.padding)
    if kind == "quantized":
        new = pg_utils.QuantizedConv2d(bias=conv.bias is not None, **geometry, **settings)
    elif kind == "pg":
        new = pg_utils.PGConv2d(**geometry, **settings)
    else:
        new = cg_utils.CGConv2d(**geometry, **settings)
    with torch.no_grad():
        new.weight.copy_(conv.weight)
        if conv.bias is not None and new.bias is not None:
            new.bias.copy_(conv.bias)
    return new.to(device=conv.weight.device, dtype=conv.weight.dtype).train(conv.training)


def gate(model, kind, pact=False, select=papers_choice, **settings):
    """Replaces the float nn.Conv2d modules of `model` that `select(name,
    conv, first)` picks with QuantizedConv2d ("quantized"), PGConv2d ("pg")
    or CGConv2d ("cg") built with `settings` (the modules' keyword
    arguments: wbits, abits, pred_bits, sparse_bp, p, use_group, th, ...),
    weights copied; with `pact`, every nn.ReLU module becomes a PactReLU.
    Returns the names replaced. Raises ValueError naming the layer and
    changes nothing if a picked convolution cannot be gated (a bias before
    a gate, channels not divisible by p)."""
    if kind not in ("quantized", "pg", "cg"):
        raise ValueError(f"gate: kind must be 'quantized', 'pg' or 'cg', got {kind!r}")
    convs = [(name, m) for name, m in model.named_modules()
             if isinstance(m, nn.Conv2d) and not isinstance(m, _LIBRARY_CONVS)]
    picked = []
    for i, (name, conv) in enumerate(convs):
        if not select(name, conv, i == 0):
            continue
        if kind != "quantized" and conv.bias is not None:
            raise ValueError(f"gate: {name} has a bias, which a gated convolution cannot hold")
        try:
            picked.append((name, _replacement(kind, conv, settings)))
        except ValueError as e:
            raise ValueError(f"gate: {name}: {e}") from None
    if pact:
        picked += [(name, pg_utils.PactReLU()) for name, m in model.named_modules()
                   if isinstance(m, nn.ReLU)]
    for name, new in picked:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)
    return [name for name, _ in picked]
