#!/usr/bin/env python3
"""Golden RoPE inverse frequencies from HF transformers, one case per rope_scaling kind.

For each case the config.json fragment (rope_theta, rope_scaling or rope_parameters, head size) is
given to transformers' LlamaConfig and LlamaRotaryEmbedding; the case records the float32
inverse frequencies and the attention scaling, or "error" when transformers refuses the config
(a llama3 rope_scaling without low_freq_factor/high_freq_factor raises KeyError there), so that
model.ParseConfig can be checked to refuse the same configs.
Usage: python3 tools/oracle/rope_golden.py testdata/model/rope.json
"""
import json
import sys

import torch
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

BASE = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=1, vocab_size=32, max_position_embeddings=4096)

LLAMA31 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
           "original_max_position_embeddings": 256}

CASES = {
    "none": {"rope_theta": 10000.0, "rope_scaling": None},
    "default-rope-parameters": {"rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}},
    "default-rope-scaling": {"rope_theta": 10000.0, "rope_scaling": {"rope_type": "default"}},
    "linear": {"rope_theta": 10000.0, "rope_scaling": {"rope_type": "linear", "factor": 4.0}},
    "linear-type-key": {"rope_theta": 500000.0, "rope_scaling": {"type": "linear", "factor": 2.0}},
    "linear-rope-parameters": {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}},
    "llama3": {"rope_theta": 500000.0, "rope_scaling": LLAMA31},
    "llama3-other-factors": {"rope_theta": 10000.0, "rope_scaling": {
        "rope_type": "llama3", "factor": 4.0, "low_freq_factor": 2.0, "high_freq_factor": 8.0,
        "original_max_position_embeddings": 64}},
    "llama3-head-dim": {"rope_theta": 500000.0, "head_dim": 16, "rope_scaling": LLAMA31},
    "llama3-rope-parameters": {"rope_parameters": dict(LLAMA31, rope_theta=500000.0)},
    "llama3-without-factors": {"rope_theta": 500000.0, "rope_scaling": {
        "rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 256}},
    "llama3-without-high-factor": {"rope_theta": 500000.0, "rope_scaling": {
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 256}},
}


def case(name: str, fields: dict) -> dict:
    out = {"name": name, "config": fields}
    try:
        cfg = LlamaConfig(**BASE, **json.loads(json.dumps(fields)))
        rot = LlamaRotaryEmbedding(cfg)
    except (KeyError, ValueError) as e:
        out["error"] = f"{type(e).__name__}: {e}"
        return out
    out["inv_freq"] = [float(v) for v in rot.inv_freq.to(torch.float32).tolist()]
    out["attention_scaling"] = float(rot.attention_scaling)
    return out


def main(path: str) -> None:
    cases = [case(n, f) for n, f in CASES.items()]
    with open(path, "w") as f:
        json.dump({"base": BASE, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
