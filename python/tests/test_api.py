"""What a Python user meets beyond the numbers: errors that name the
argument, modules that copy and pickle, counters, gate() on any model."""

import copy
import io
import unittest

import torch
import torch.nn as nn

import dnn_gating
import dnn_gating.cg_utils as cg
import dnn_gating.pg_utils as q
from support import TestCase


class Errors(TestCase):
    def assertRefused(self, error, words, fn):
        with self.assertRaises(error) as caught:
            fn()
        for word in words:
            self.assertIn(word, str(caught.exception))

    def test_bad_settings_raise_value_error_naming_the_argument(self):
        self.assertRefused(ValueError, ["pred_bits", "abits"],
                           lambda: q.PGConv2d(4, 6, 3, abits=3, pred_bits=3))
        self.assertRefused(ValueError, ["wbits"], lambda: q.PGConv2d(4, 6, 3, wbits=17))
        self.assertRefused(ValueError, ["p=4", "in=6"], lambda: cg.CGConv2d(6, 8, 3, p=4))
        self.assertRefused(ValueError, ["alpha"], lambda: cg.CGConv2d(8, 8, 3, alpha=0.0))
        self.assertRefused(ValueError, ["groups"], lambda: q.PGConv2d(4, 6, 3, groups=2))
        self.assertRefused(ValueError, ["bias"], lambda: cg.CGConv2d(8, 8, 3, bias=True))
        self.assertRefused(ValueError, ["bits"],
                           lambda: torch.ops.dnn_gating.quantize(torch.zeros(3), 17))
        self.assertRefused(ValueError, ["bh"], lambda: q.TorchTruncate(3, 3))
        self.assertRefused(ValueError, ["kind"], lambda: dnn_gating.models.resnet20("pgx"))
        self.assertRefused(ValueError, ["depth"],
                           lambda: dnn_gating.models.ResNet("float", depth=21))

    def test_bad_inputs_raise_runtime_error(self):
        layer = q.PGConv2d(4, 6, 3, padding=1)
        self.assertRefused(RuntimeError, ["4 channels"], lambda: layer(torch.zeros(1, 5, 8, 8)))
        self.assertRefused(ValueError, ["weight", "shape"], lambda: layer._cpp().forward(
            torch.zeros(1, 4, 8, 8), torch.zeros(6, 4, 1, 1), layer.threshold, False, 5.0))


class Modules(TestCase):
    def test_copies_and_pickles_compute_alike(self):
        model = dnn_gating.models.resnet20("cg", use_group=True, sparse_bp=True).eval()
        x = torch.randn(2, 3, 32, 32)
        twin = copy.deepcopy(model)
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        loaded = torch.load(buffer)
        with torch.no_grad():
            y = model(x)
            self.assertTrue(torch.equal(twin(x), y))
            self.assertTrue(torch.equal(loaded(x), y))

    def test_counters_and_gating_loss(self):
        model = dnn_gating.models.resnet20("pg", wbits=8, abits=3, pred_bits=2)
        self.assertEqual(len(dnn_gating.gated_layers(model)), 9)
        with torch.no_grad():
            for _, layer in dnn_gating.gated_layers(model):
                layer.threshold.fill_(100.0)  # every gate closed
        model(torch.randn(2, 3, 32, 32))
        out, on = dnn_gating.total_counts(model)
        self.assertEqual(on, 0)
        self.assertEqual(out, 2 * (16 * 32 * 32 * 3 + 32 * 16 * 16 * 3 + 64 * 8 * 8 * 3))
        # sigma * sum ||threshold - gtarget||_2: 3 blocks of 16, 32 and 64 channels, 3 apart.
        loss = dnn_gating.gating_loss(model, "pg", gtarget=97.0, sigma=0.5)
        expected = 0.5 * 3.0 * 3 * (16 ** 0.5 + 32 ** 0.5 + 64 ** 0.5)
        self.assertAlmostEqual(loss.item(), expected, places=4)
        cg_model = dnn_gating.models.resnet20("cg")
        loss = dnn_gating.gating_loss(cg_model, "cg", gtarget=2.0)  # thresholds start at 0
        self.assertAlmostEqual(loss.item(), 1e-4 * 4.0 * 3 * (16 + 32 + 64), places=6)
        postact = dnn_gating.models.resnet20("cg-postact", partitions=2)
        self.assertEqual(len(dnn_gating.gated_layers(postact)), 18)

    def test_evaluation_skips_and_says_how(self):
        layer = cg.CGConv2d(64, 64, 3, padding=1, p=4, use_group=True).eval()
        x = torch.randn(4, 64, 8, 8)
        with torch.no_grad():
            layer.threshold.fill_(10.0)  # every gate closed
            layer.set_skipping("never")
            dense = layer(x)
            self.assertIn(layer.last_way(), ("every output", "one pass"))  # every product
            layer.set_skipping("always")
            skipped = layer(x)
            self.assertIn(layer.last_way(), ("open outputs", "open tiles"))
        self.assertEqual(layer.num_full, 0)
        self.assertClose(skipped, dense, "skipping is exact", rtol=1e-5, atol=1e-5)

class GateBatchNorm(TestCase):
    """The gate's BatchNorm behaves as torch.nn.BatchNorm2d on the partial sums."""

    def partial_sums(self, layer, x):
        return torch.nn.functional.conv2d(x, layer.weight * layer.mask, None, layer.stride,
                                          layer.padding)

    def test_settings_changed_after_construction_and_a_cumulative_average(self):
        torch.manual_seed(2)
        layer = cg.CGConv2d(16, 16, 3, padding=1, p=4, use_group=True)
        reference = nn.BatchNorm2d(16, affine=False, momentum=None, eps=1e-3)
        layer.bn.momentum, layer.bn.eps = None, 1e-3
        with torch.no_grad():
            for _ in range(3):
                x = torch.randn(4, 16, 8, 8)
                layer(x)
                reference(self.partial_sums(layer, x))
        self.assertClose(layer.bn.running_mean, reference.running_mean, "running mean",
                         rtol=1e-5, atol=1e-6)
        self.assertClose(layer.bn.running_var, reference.running_var, "running variance",
                         rtol=1e-5, atol=1e-6)
        self.assertEqual(layer.bn.num_batches_tracked.item(), 3)

    def test_a_frozen_batch_norm_keeps_its_statistics(self):
        layer = cg.CGConv2d(16, 16, 3, padding=1, p=4, use_group=True).train()
        layer.bn.eval()
        before = layer.bn.running_mean.clone()
        layer(torch.randn(4, 16, 8, 8))
        self.assertTrue(torch.equal(layer.bn.running_mean, before))
        self.assertEqual(layer.bn.num_batches_tracked.item(), 0)

    def test_alpha_changed_after_construction_takes_effect(self):
        torch.manual_seed(3)
        layer = q.PGConv2d(8, 8, 3, padding=1, wbits=8, abits=3, pred_bits=2, sparse_bp=True)
        x = torch.relu(torch.randn(2, 8, 6, 6)).requires_grad_()
        layer(x).sum().backward()
        before = layer.threshold.grad.clone()
        layer.threshold.grad = None
        layer.alpha = 1.0
        layer(x).sum().backward()
        self.assertFalse(torch.allclose(layer.threshold.grad, before))


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.body = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU(), nn.Conv2d(16, 32, 1, bias=False))
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.body(self.stem(x)).mean((2, 3)))


class Gate(TestCase):
    def test_gate_replaces_the_papers_choice_and_keeps_the_function_where_gates_open(self):
        net = SmallNet().eval()
        x = torch.randn(2, 3, 16, 16)
        with torch.no_grad():
            before = net(x)
        replaced = dnn_gating.gate(net, "cg", p=4, use_group=True, th=-1e9)
        self.assertEqual(replaced, ["body.0"])
        self.assertIsInstance(net.body[0], cg.CGConv2d)
        with torch.no_grad():
            after = net(x)
        self.assertEqual(net.body[0].num_full, net.body[0].num_out)
        self.assertClose(after, before, "every gate open: the float function", rtol=1e-4,
                         atol=1e-5)

    def test_gate_refuses_by_name_and_changes_nothing(self):
        net = SmallNet()
        net.body[0] = nn.Conv2d(16, 16, 3, padding=1, bias=True)
        with self.assertRaises(ValueError) as caught:
            dnn_gating.gate(net, "pg")
        self.assertIn("body.0", str(caught.exception))
        self.assertIsInstance(net.body[0], nn.Conv2d)
        self.assertNotIsInstance(net.body[0], q.PGConv2d)


if __name__ == "__main__":
    unittest.main()
