"""Whole ResNet-20s built from the Python modules against the original's
recorded logits, losses, one SGD step and 20-step trajectories (float64)."""

import unittest

import torch
import torch.nn.functional as F

import dnn_gating
from support import MODEL_TOL, TestCase, golden, state_dict


def model_of(config):
    if config.get("cg"):
        kind = "cg-postact" if config["model"] == "resnet20_postact" else "cg"
        return dnn_gating.models.resnet20(kind, partitions=config["partitions"],
                                          use_group=config["use_group"],
                                          shuffle=config["shuffle"],
                                          sparse_bp=config["sparse_bp"],
                                          cg_alpha=config["alpha"])
    if config["pg"]:
        return dnn_gating.models.resnet20("pg", wbits=config["wbits"], abits=config["abits"],
                                          pact=config["pact"], pred_bits=config["pred_bits"],
                                          sparse_bp=config["sparse_bp"])
    return dnn_gating.models.resnet20("quantized", wbits=config["wbits"], abits=config["abits"],
                                      pact=config["pact"])


def sgd_of(model, config):
    """The original trainers' optimisers: PG weight decay on every parameter;
    CG none on thresholds and 1-D parameters, untrained ones left out."""
    opts = dict(lr=config["lr"], momentum=config["momentum"])
    if not config.get("cg"):
        return torch.optim.SGD(model.parameters(), weight_decay=config["weight_decay"], **opts)
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    free = [p for n, p in trained if "threshold" in n or p.dim() == 1]
    decayed = [p for n, p in trained if not ("threshold" in n or p.dim() == 1)]
    return torch.optim.SGD([{"params": decayed, "weight_decay": config["weight_decay"]},
                            {"params": free, "weight_decay": 0.0}], **opts)


def gating_loss_of(model, config):
    if config.get("cg"):
        return dnn_gating.gating_loss(model, "cg", config["gtarget"])
    return dnn_gating.gating_loss(model, "pg", config["gtarget"], sigma=config["sigma"])


def step(model, optimizer, config, x, labels):
    model.train()
    optimizer.zero_grad()
    logits = model(x)
    ce = F.cross_entropy(logits, labels)
    gating = gating_loss_of(model, config)
    (ce + gating).backward()
    optimizer.step()
    return logits, ce.item(), float(gating)


class GoldenModels(TestCase):
    def loaded(self, name, prefix="sd__"):
        config, t = golden(name)
        self.assertEqual(config["dtype"], "float64")
        model = model_of(config).double()
        initial = state_dict(t, prefix)
        self.assertEqual(set(model.state_dict()), set(initial), f"{name}: state-dict keys")
        model.load_state_dict(initial)
        return config, t, model

    def check_case(self, name):
        config, t, model = self.loaded(name)
        model.eval()
        with torch.no_grad():
            self.assertClose(model(t["x"]), t["logits_eval"], f"{name} eval logits", **MODEL_TOL)
        if "loss_ce" not in t:
            model.train()
            self.assertClose(model(t["x"]).detach(), t["logits_train"], f"{name} train logits",
                             **MODEL_TOL)
            return
        logits, ce, gating = step(model, sgd_of(model, config), config, t["x"], t["labels"])
        self.assertClose(logits.detach(), t["logits_train"], f"{name} train logits", **MODEL_TOL)
        self.assertAlmostEqual(ce, t["loss_ce"].item(), delta=1e-6)
        self.assertAlmostEqual(gating, t["loss_gating"].item(), delta=1e-6)
        after = model.state_dict()
        for key, expected in state_dict(t, "step__").items():
            self.assertClose(after[key].to(expected.dtype), expected, f"{name} step {key}",
                             **MODEL_TOL)

    def test_quantized(self):
        self.check_case("resnet20_quant_w8_a3_pact")

    def test_pg(self):
        self.check_case("resnet20_pg_w8_a3_pb2_pact_spbp")

    def test_cg(self):
        self.check_case("resnet20_cg_p4_group_spbp")

    def test_cg_postact(self):
        self.check_case("resnet20_cg_postact_p2_group")

    def check_trajectory(self, name):
        config, t, model = self.loaded(name)
        optimizer = sgd_of(model, config)
        for i in range(config["steps"]):
            _, ce, gating = step(model, optimizer, config, t["traj_x"][i], t["traj_y"][i])
            _, on = dnn_gating.total_counts(model)
            self.assertAlmostEqual(ce, t["traj_ce"][i].item(), delta=1e-6, msg=f"step {i} ce")
            self.assertAlmostEqual(gating, t["traj_gating"][i].item(), delta=1e-6,
                                   msg=f"step {i} gating loss")
            self.assertEqual(on, t["traj_num_on"][i].item(), f"step {i} open gates")
        after = model.state_dict()
        for key, expected in state_dict(t, "end__").items():
            self.assertClose(after[key].to(expected.dtype), expected, f"{name} end {key}",
                             **MODEL_TOL)

    def test_pg_trajectory(self):
        self.check_trajectory("traj_pg_w8_a3_pb2_pact_spbp")

    def test_cg_trajectory(self):
        self.check_trajectory("traj_cg_p4_group_spbp")


if __name__ == "__main__":
    unittest.main()
