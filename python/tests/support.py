"""What the extension's tests share: the golden files, the build's programs."""

import json
import os
import unittest

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN_DIR = os.environ.get("DG_GOLDEN_DIR", os.path.join(HERE, "..", "..", "..", "shared", "golden"))
BINARY_DIR = os.environ.get("DG_BINARY_DIR", os.path.join(HERE, "..", "..", "build"))

# The golden files' tolerances (their README): layers in float32, models in float64.
LAYER_TOL = dict(rtol=1e-5, atol=1e-6)
MODEL_TOL = dict(rtol=1e-6, atol=1e-6)


def golden(name):
    """(config, tensors) of a golden file; skips the test without them, and
    fails instead where CI is set."""
    path = os.path.join(GOLDEN_DIR, name + ".pt")
    if not os.path.exists(path):
        message = f"golden file {path} not found (set DG_GOLDEN_DIR)"
        if os.environ.get("CI"):
            raise AssertionError(message)
        raise unittest.SkipTest(message)
    m = torch.jit.load(path)
    return json.loads(m.config), dict(m.named_buffers())


def state_dict(tensors, prefix):
    """The state dict a golden file holds under `prefix` (a `.` stored as `__`)."""
    return {k[len(prefix):].replace("__", "."): v for k, v in tensors.items()
            if k.startswith(prefix)}


def program(name):
    """The path of one of the build's programs; skips the test if missing."""
    path = os.path.join(BINARY_DIR, name)
    if not os.path.exists(path):
        raise unittest.SkipTest(f"{path} not built")
    return path


class TestCase(unittest.TestCase):
    def assertClose(self, actual, expected, what, **tol):
        self.assertEqual(tuple(actual.shape), tuple(expected.shape), what)
        if not torch.allclose(actual.to(expected.dtype), expected, **tol):
            diff = (actual.to(expected.dtype) - expected).abs().max().item()
            self.fail(f"{what}: max difference {diff:.3g} beyond {tol}")
