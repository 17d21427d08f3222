#!/usr/bin/env python3
"""Tiny random Llama models (Hugging Face layout) and their transformers logits, for export tests.

They cover what stories260K does not: an untied LM head, a GQA ratio of 3, no GQA at all, and
every rope_scaling kind model.ParseConfig accepts: none (written as transformers 5's
rope_parameters "default"), "linear", and "llama3" with Llama 3.1's factors and with others
(a llama3 rope_scaling without low_freq_factor/high_freq_factor is refused by transformers and
by medassist; tools/oracle/rope_golden.py checks that). For each model NAME this writes testdata/export/NAME/
{config.json, model.safetensors, golden.json}; golden.json has the same layout as
testdata/llama/*.json (cases with ids and the float32 logits of every position).
Usage: python3 tools/oracle/tiny_random.py testdata/export [NAME ...]
"""
import copy
import json
import os
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

# The shape of the smallest models, one layer each.
SMALL = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=1, vocab_size=64, max_position_embeddings=128)

MODELS = {
    "tiny-gqa3-untied-llama3": dict(
        hidden_size=96, intermediate_size=136, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=2, vocab_size=128, tie_word_embeddings=False, max_position_embeddings=256,
        rms_norm_eps=1e-6, rope_theta=10000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
    ),
    "tiny-mha-tied-linear": dict(
        hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=4, vocab_size=128, tie_word_embeddings=True, max_position_embeddings=256,
        rms_norm_eps=1e-5, rope_theta=500000.0, rope_scaling={"rope_type": "linear", "factor": 2.0},
    ),
    "tiny-gqa2-default": dict(
        SMALL, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
        rms_norm_eps=1e-5, rope_theta=10000.0, rope_scaling=None,
    ),
    "tiny-mha-llama3-factors": dict(
        SMALL, num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False,
        rms_norm_eps=1e-6, rope_theta=10000.0,
        rope_scaling={"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 2.0,
                      "high_freq_factor": 8.0, "original_max_position_embeddings": 16},
    ),
}
SEQ_LEN = 40


def classic_rope_keys(path: str, kwargs: dict) -> None:
    """Write rope_theta/rope_scaling (the config.json keys of released Llama checkpoints) instead of
    transformers 5's rope_parameters, which older readers ignore."""
    with open(path) as f:
        c = json.load(f)
    c.pop("rope_parameters", None)
    c["rope_theta"] = kwargs["rope_theta"]
    c["rope_scaling"] = kwargs["rope_scaling"]
    with open(path, "w") as f:
        json.dump(c, f, indent=2)


def build(name: str, kwargs: dict, out_dir: str) -> None:
    torch.manual_seed(1234)
    cfg = LlamaConfig(bos_token_id=1, eos_token_id=2, hidden_act="silu", torch_dtype="float32", **copy.deepcopy(kwargs))
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif "embed_tokens" in pname:
                p.copy_(torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    # generation_config.json is not needed by the tests.
    gen_cfg = os.path.join(d, "generation_config.json")
    if os.path.exists(gen_cfg):
        os.remove(gen_cfg)
    want_kind = "default"
    if kwargs["rope_scaling"] is not None:  # no scaling stays in transformers 5's rope_parameters
        classic_rope_keys(os.path.join(d, "config.json"), kwargs)
        want_kind = kwargs["rope_scaling"]["rope_type"]
    model = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager").eval()
    assert model.config.rope_parameters["rope_type"] == want_kind, model.config
    g = torch.Generator().manual_seed(99)
    ids = torch.randint(3, cfg.vocab_size, (SEQ_LEN,), generator=g).tolist()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    case = {"prompt": "random ids", "ids": ids,
            "logits": [[round(float(v), 7) for v in row] for row in logits.tolist()], "greedy_ids": []}
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump({"model": name, "new_tokens": 0, "cases": [case]}, f)


if __name__ == "__main__":
    # Optional names after the output dir rebuild only those models.
    for n, kw in MODELS.items():
        if len(sys.argv) <= 2 or n in sys.argv[2:]:
            build(n, copy.deepcopy(kw), sys.argv[1])
