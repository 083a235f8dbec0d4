"""The Python modules against the original's recorded layers and ops, gradients included."""

import unittest

import torch

import dnn_gating.cg_utils as cg
import dnn_gating.pg_utils as q
from support import LAYER_TOL, TestCase, golden, state_dict


def backward_through(module_or_fn, x, grad_y):
    x = x.clone().requires_grad_(True)
    y = module_or_fn(x)
    y.backward(grad_y)
    return y, x.grad


class GoldenOps(TestCase):
    def check(self, name, fn):
        config, t = golden(name)
        y, grad_x = backward_through(fn(config), t["x"], t["grad_y"])
        self.assertClose(y.detach(), t["y"], f"{name} y", **LAYER_TOL)
        self.assertClose(grad_x, t["grad_x"], f"{name} grad_x", **LAYER_TOL)
        return config, t

    def test_quantize(self):
        for bits in (1, 3, 8):
            self.check(f"quantize_b{bits}", lambda c: q.TorchQuantize(c["bits"]))

    def test_truncate(self):
        for name in ("truncate_b3_bh2", "truncate_b8_bh4"):
            self.check(name, lambda c: q.TorchTruncate(c["b"], c["bh"]))

    def test_pact(self):
        relu = q.PactReLU()
        _, t = golden("pact_ub1.5")
        with torch.no_grad():
            relu.upper_bound.copy_(t["param__upper_bound"])
        self.check("pact_ub1.5", lambda c: relu)
        self.assertClose(relu.upper_bound.grad, t["grad__upper_bound"], "grad upper_bound",
                         **LAYER_TOL)


class GoldenLayers(TestCase):
    def run_layer(self, name, layer):
        config, t = golden(name)
        layer.load_state_dict(state_dict(t, "init__"))
        layer.train(config["train"])
        y, grad_x = backward_through(layer, t["x"], t["grad_y"])
        self.assertClose(y.detach(), t["y"], f"{name} y", **LAYER_TOL)
        self.assertClose(grad_x, t["grad_x"], f"{name} grad_x", **LAYER_TOL)
        params = dict(layer.named_parameters())
        for key in (k for k in t if k.startswith("grad__")):
            param = key[len("grad__"):].replace("__", ".")
            self.assertClose(params[param].grad, t[key], f"{name} grad {param}", **LAYER_TOL)
        after = layer.state_dict()
        for key, value in state_dict(t, "after__").items():
            if key.endswith("num_batches_tracked"):
                self.assertEqual(after[key].item(), value.item(), f"{name} after {key}")
            elif not key.startswith(("weight", "threshold")):  # parameters: no step was taken
                self.assertClose(after[key], value, f"{name} after {key}", **LAYER_TOL)
        return config, t

    def test_quantized_conv(self):
        for name in ("qconv_w8_a3", "qconv_w1_a2_s2"):
            config, _ = golden(name)
            layer = q.QuantizedConv2d(config["in_channels"], config["out_channels"],
                                      config["kernel_size"], config["stride"], config["padding"],
                                      bias=False, wbits=config["wbits"], abits=config["abits"])
            self.run_layer(name, layer)

    def test_pg_conv(self):
        for name in ("pgconv_w8_a3_pb2_sparse", "pgconv_w8_a4_pb2_dense_s2"):
            config, t = golden(name)
            layer = q.PGConv2d(config["in_channels"], config["out_channels"],
                               config["kernel_size"], config["stride"], config["padding"],
                               wbits=config["wbits"], abits=config["abits"],
                               pred_bits=config["pred_bits"], sparse_bp=config["sparse_bp"],
                               alpha=config["alpha"])
            self.run_layer(name, layer)
            self.assertEqual(layer.num_out, t["num_out"].item(), name)
            self.assertEqual(layer.num_high, t["num_on"].item(), name)

    def test_cg_conv(self):
        for name in ("cgconv_p4_group_sparse", "cgconv_p2_dense_s2", "cgconv_p4_group_shuffle",
                     "cgconv_p4_group_eval"):
            config, t = golden(name)
            layer = cg.CGConv2d(config["in_channels"], config["out_channels"],
                                config["kernel_size"], config["stride"], config["padding"],
                                sparse_bp=config["sparse_bp"], use_group=config["use_group"],
                                shuffle=config["shuffle"], p=config["partitions"],
                                alpha=config["alpha"])
            self.run_layer(name, layer)
            self.assertEqual(layer.num_out, t["num_out"].item(), name)
            self.assertEqual(layer.num_full, t["num_on"].item(), name)

    def test_channels_last_input_gives_the_same_layer(self):
        config, t = golden("cgconv_p4_group_sparse")
        layer = cg.CGConv2d(config["in_channels"], config["out_channels"], config["kernel_size"],
                            config["stride"], config["padding"], sparse_bp=True,
                            use_group=True, p=config["partitions"], alpha=config["alpha"])
        layer.load_state_dict(state_dict(t, "init__"))
        x = t["x"].contiguous(memory_format=torch.channels_last)
        self.assertClose(layer(x).detach(), t["y"], "channels-last y", **LAYER_TOL)


if __name__ == "__main__":
    unittest.main()
