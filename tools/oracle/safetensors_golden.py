#!/usr/bin/env python3
"""A small safetensors file written by the reference implementation (PyPI safetensors + torch),
for the Go reader's compatibility test and the float conversions' check against torch.

Writes testdata/model/reference.safetensors and testdata/model/reference.json: the float32 inputs
(as bit patterns) and torch's F16/BF16 conversions of them (round to nearest even).

Usage: python3 tools/oracle/safetensors_golden.py
"""
import json
import os
import struct

import numpy as np
import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "testdata", "model")


def f32_bits(values):
    return [struct.unpack("<I", struct.pack("<f", v))[0] for v in values]


def inputs():
    rng = np.random.default_rng(7)
    special = [0.0, -0.0, 1.0, -1.0, 0.1, 1 / 3, 65504.0, 65519.99, 65520.0, 70000.0, -1e30, 3.4e38,
               float("inf"), float("-inf"), 6.1e-5, 6.0e-8, 5.96e-8, 2.98e-8, 2.99e-8, 1e-10, 1e-40, -1e-45,
               1.0009765625, 1.00048828125, 1.000732421875, 1.0078125, 1.00390625, 1.005859375]
    bits = f32_bits(special)
    # exact ties for F16 (13 dropped bits = 0x1000) and BF16 (16 dropped bits = 0x8000), both parities
    bits += [0x3F801000, 0x3F803000, 0x3F808000, 0x3F818000, 0x387FF000, 0x33800000, 0x33000000]
    # float32 subnormals and normals from random bit patterns, plus gaussian weights
    bits += [int(b) for b in rng.integers(0, 2**32, size=400, dtype=np.uint64) if (int(b) >> 23) & 0xFF != 0xFF]
    bits += f32_bits(rng.normal(0, 0.02, size=200).astype(np.float32).tolist())
    return bits


def main():
    bits = inputs()
    x = torch.from_numpy(np.array(bits, dtype=np.uint32).view(np.float32).copy())
    f16 = x.to(torch.float16)
    bf16 = x.to(torch.bfloat16)
    tensors = {
        "f32": x.reshape(1, -1),
        "f16": f16,
        "bf16": bf16,
        "i64": torch.arange(-3, 3, dtype=torch.int64).reshape(2, 3),
        "scalar": torch.tensor(2.5, dtype=torch.float32),
        "empty": torch.zeros((0, 4), dtype=torch.float32),
    }
    save_file(tensors, os.path.join(OUT, "reference.safetensors"), metadata={"format": "pt", "note": "golden"})
    golden = {
        "generator": "tools/oracle/safetensors_golden.py",
        "torch_version": torch.__version__,
        "f32_bits": bits,
        "f16_bits": f16.view(torch.int16).numpy().astype(np.uint16).tolist(),
        "bf16_bits": bf16.view(torch.int16).numpy().astype(np.uint16).tolist(),
        "shapes": {k: list(v.shape) for k, v in tensors.items()},
        "metadata": {"format": "pt", "note": "golden"},
    }
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(golden, f, indent=0)
        f.write("\n")
    print(f"wrote {len(bits)} values")


if __name__ == "__main__":
    main()
