#!/usr/bin/env bash
# Writes a CIFAR-10-format directory of 32x32 crops of natural photographs
# (those Debian's python3-skimage ships: astronaut, chelsea, coffee, rocket,
# ...), each photograph first reduced 2, 4 or 8 times so that objects span a
# crop as in CIFAR-10. Speed checks use it beside noise and Fashion-MNIST,
# whose flat background hides data-dependent slow paths.
#   scripts/photo_cifar.sh [DIR]    # default DIR: data/photos-cifar
# Then: build/cg-cifar10 --data-dir DIR ... (labels are the photograph's
# index modulo 10: for timing, not for accuracy).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-data/photos-cifar}"
if ! /usr/bin/python3 -c 'import skimage.data, numpy' 2>/dev/null; then
  scripts/install_packages.sh python3-skimage python3-numpy
fi
mkdir -p "$dir"
/usr/bin/python3 - "$dir" <<'PY'
import os, sys
import numpy as np
import skimage.data as d

out = sys.argv[1]
names = ["astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "grass",
         "gravel", "brick", "moon", "cell", "hubble_deep_field", "immunohistochemistry"]
photos = []
for name in names:
    try:
        img = getattr(d, name)()
    except Exception:  # a photograph this version does not ship
        continue
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    if img.max() <= 1.0:
        img = img * 255.0
    for f in (2, 4, 8):
        h, w = img.shape[0] // f, img.shape[1] // f
        if h < 32 or w < 32:
            continue
        small = img[: h * f, : w * f].reshape(h, f, w, f, 3).mean(axis=(1, 3))
        photos.append((len(photos) % 10, small))
if len(photos) < 8:
    sys.exit("photo_cifar: too few photographs in python3-skimage")
rng = np.random.default_rng(0)

def write(path, n):
    records = np.empty((n, 3073), dtype=np.uint8)
    for i in range(n):
        label, p = photos[rng.integers(len(photos))]
        top = rng.integers(p.shape[0] - 31)
        left = rng.integers(p.shape[1] - 31)
        crop = p[top : top + 32, left : left + 32]
        records[i, 0] = label
        records[i, 1:] = np.clip(crop + 0.5, 0, 255).astype(np.uint8).transpose(2, 0, 1).reshape(-1)
    records.tofile(path)

for k in range(1, 6):
    write(os.path.join(out, f"data_batch_{k}.bin"), 2048)
write(os.path.join(out, "test_batch.bin"), 2000)
print(f"photo_cifar: wrote {out} (5 x 2048 training and 2000 test crops of {len(photos)} reduced photographs)")
PY
