"""State dicts move between the Python modules and the C++ trainers: one
saved by Python evaluates with `pg-cifar10 -t -p` / `cg-cifar10 -t -p` to the
predictions and sparsity Python computes, and the trainers'
`--export-pytorch` loads back into the Python model unchanged."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

import torch

import dnn_gating
from support import TestCase, program

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
IMAGES = 256
# The trainers' test batch (--batch-size): PG and quantized layers quantize
# each activation tensor by its maximum over the batch, as the original
# does, so predictions depend on which images share a batch.
BATCH = 128


def write_cifar_test_batch(directory, images, labels):
    """CIFAR-10's binary test_batch.bin: a label byte, then 3072 bytes of R, G, B planes."""
    records = torch.cat([labels.to(torch.uint8).view(-1, 1), images.reshape(len(labels), -1)], 1)
    with open(os.path.join(directory, "test_batch.bin"), "wb") as f:
        f.write(records.numpy().tobytes())


def smooth_images(n, generator):
    """Images with structure (upsampled noise), so that gates open and close."""
    coarse = torch.rand(n, 3, 8, 8, generator=generator)
    images = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear",
                                             align_corners=False)
    return (images * 255).round().to(torch.uint8)


def logits_of(model, images):
    """The model's evaluation logits, in the trainers' test batches."""
    model.eval()
    x = (images.float() / 255 - MEAN) / STD
    with torch.no_grad():
        return torch.cat([model(x[start:start + BATCH]) for start in range(0, len(x), BATCH)])


def python_evaluation(model, images, labels):
    """(accuracy %, update-phase sparsity %) as the trainers compute them."""
    model.eval()
    x = (images.float() / 255 - MEAN) / STD
    correct = out = on = 0
    with torch.no_grad():
        for start in range(0, len(labels), BATCH):
            logits = model(x[start:start + BATCH])
            correct += (logits.argmax(1) == labels[start:start + BATCH]).sum().item()
            batch_out, batch_on = dnn_gating.total_counts(model)
            out += batch_out
            on += batch_on
    return 100.0 * correct / len(labels), 100.0 - 100.0 * on / out


def trainer_evaluation(args):
    """(accuracy %, sparsity %) the trainer prints."""
    run = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{run.stdout}\n{run.stderr}")
    accuracy = re.search(r"Accuracy of the network on the \d+ test images: ([\d.]+) %", run.stdout)
    sparsity = re.search(r"Sparsity of the update phase: ([\d.]+) %", run.stdout)
    if not accuracy or not sparsity:
        raise AssertionError(f"no accuracy or sparsity line in:\n{run.stdout}")
    return float(accuracy.group(1)), float(sparsity.group(1))


class Checkpoints(TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="dnn_gating_python_")
        torch.manual_seed(5)
        self.candidates = smooth_images(3 * IMAGES, torch.Generator().manual_seed(3))

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def clear_predictions(self, model):
        """The IMAGES candidates the model classifies with the widest margins,
        labelled with its own predictions, written as the test batch: a
        model with random weights has near-even logits, and float rounding
        (the trainers fold BatchNorms into their layers' passes) moves a few
        3-bit quantizer roundings, which flips the closest of them."""
        logits = logits_of(model, self.candidates)
        top2 = logits.topk(2, dim=1).values
        chosen = (top2[:, 0] - top2[:, 1]).argsort(descending=True)[:IMAGES]
        images = self.candidates[chosen]
        labels = logits_of(model, images).argmax(1)  # in the batches the trainer will see
        write_cifar_test_batch(self.dir, images, labels)
        return images, labels

    def round_trip(self, trainer, model, flags):
        # Running statistics and thresholds of a model that has seen data.
        model.train()
        x = (self.candidates.float() / 255 - MEAN) / STD
        with torch.no_grad():
            for start in range(0, len(x), 64):
                model(x[start:start + 64])
        images, labels = self.clear_predictions(model)
        saved = os.path.join(self.dir, "model_resnet-20.pt")
        exported = os.path.join(self.dir, "exported.pt")
        torch.save(model.state_dict(), saved)

        ours = python_evaluation(model, images, labels)
        self.assertEqual(ours[0], 100.0)
        theirs = trainer_evaluation([program(trainer), *flags, "-t", "-p", saved,
                                     "--data-dir", self.dir, "--export-pytorch", exported])
        # Every image classified as Python classifies it (one allowed to
        # flip), and the same share of gates closed.
        self.assertGreaterEqual(theirs[0], 100.0 - 100.0 / IMAGES - 0.05,
                                f"accuracy against Python's own predictions: {trainer} {theirs[0]}")
        self.assertLessEqual(abs(ours[1] - theirs[1]), 0.3,
                             f"sparsity: Python {ours[1]}, {trainer} {theirs[1]}")
        self.assertGreater(ours[1], 0.0, "some gates closed")

        back = torch.load(exported)
        fresh = type(model)(**model.settings)
        fresh.load_state_dict(back)  # strict: the same keys and shapes
        for key, value in model.state_dict().items():
            self.assertTrue(torch.equal(back[key], value), f"exported {key}")

    def test_pg(self):
        model = dnn_gating.models.resnet20("pg", wbits=8, abits=3, pred_bits=2, pact=True,
                                           sparse_bp=True)
        with torch.no_grad():
            for _, layer in dnn_gating.gated_layers(model):
                layer.threshold.uniform_(-0.5, 0.5)
        self.round_trip("pg-cifar10", model, ["-pg", "-w", "8", "-a", "3", "-pb", "2", "-pact",
                                              "-spbp"])

    def test_cg(self):
        model = dnn_gating.models.resnet20("cg", partitions=4, use_group=True, sparse_bp=True)
        with torch.no_grad():
            for _, layer in dnn_gating.gated_layers(model):
                layer.threshold.uniform_(-1.0, 1.0)
        self.round_trip("cg-cifar10", model, ["-cg", "-pt", "4", "--use_group", "--sparse_bp"])


if __name__ == "__main__":
    unittest.main()
