#!/usr/bin/env python3
"""Golden LoRA merges from HF PEFT for train/merge's tests.

Writes under OUT (default testdata/merge):
  base/                       a tiny random LlamaForCausalLM (save_pretrained, safetensors, float32)
  <case>/adapter/             a PEFT LoRA adapter with random non-zero A and B (save_pretrained)
  <case>/merged/              peft's merge_and_unload() of base + adapter (save_pretrained)

Cases:
  list    target_modules as a list, scale alpha/r
  rslora  target_modules as a regex string, use_rslora (scale alpha/sqrt(r))

Usage: python3 tools/oracle/peft_merge_golden.py [OUT]
"""
import os
import shutil
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

CASES = {
    "list": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], use_rslora=False),
    "rslora": dict(r=8, lora_alpha=6, target_modules=r".*\.(k_proj|o_proj|gate_proj|up_proj)", use_rslora=True),
}


def tiny_config() -> LlamaConfig:
    return LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2,
    )


def base_model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_config()).float()
    with torch.no_grad():
        for p in model.parameters():  # norms start at 1: make every tensor distinct
            p.normal_(0.0, 0.5)
    return model.eval()


def main(out: str) -> None:
    if os.path.isdir(out):
        shutil.rmtree(out)
    base_dir = os.path.join(out, "base")
    base_model().save_pretrained(base_dir, safe_serialization=True)
    for i, (name, kw) in enumerate(CASES.items()):
        model = LlamaForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
        cfg = LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, bias="none", **kw)
        peft_model = get_peft_model(model, cfg)
        torch.manual_seed(100 + i)
        with torch.no_grad():
            for pname, p in peft_model.named_parameters():
                if "lora_A" in pname or "lora_B" in pname:
                    p.normal_(0.0, 0.3)  # B is zero after init: make both non-zero
        peft_model.save_pretrained(os.path.join(out, name, "adapter"), safe_serialization=True)
        merged = peft_model.merge_and_unload()
        merged.save_pretrained(os.path.join(out, name, "merged"), safe_serialization=True)
    # generation_config.json is not needed by the tests.
    for root, _, files in os.walk(out):
        for f in files:
            if f in ("generation_config.json", "README.md"):
                os.remove(os.path.join(root, f))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "testdata/merge")
