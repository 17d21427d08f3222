#!/usr/bin/env python3
"""Golden LoRA optimizer steps from HF transformers + PEFT + torch AdamW on a tiny random Llama.

Writes into testdata/train/ (default):
  tiny/              config.json + model.safetensors: the random base model (untied head, GQA)
  init_adapter/      adapter_config.json + adapter_model.safetensors: the starting adapter (B non-zero)
  step{1,2,3}.safetensors  the adapter tensors after each optimizer step (PEFT names)
  lora_step.json     the micro-batches, hyperparameters, per-step losses, learning rates and gradient
                     norms, and learning-rate schedules of transformers' get_*_schedule_with_warmup

The step is the one medassist's trainer performs: every micro-batch's loss is the sum of next-token
cross-entropies over labelled tokens divided by the labelled tokens of the whole optimizer step
(grad-accum micro-batches together), gradients accumulate, clip_grad_norm_, AdamW, scheduler step.

Usage: python3 tools/oracle/lora_step_golden.py [OUT_DIR]
"""
import json
import math
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, get_constant_schedule_with_warmup,
                          get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup)

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
HP = {
    "rank": 4, "alpha": 8.0, "lr": 1e-2, "weight_decay": 0.1, "clip_norm": 0.5,
    "schedule": "cosine", "warmup_steps": 0, "total_steps": 3, "grad_accum": 2,
}


def tiny_config():
    return LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, hidden_act="silu",
        bos_token_id=1, eos_token_id=2, torch_dtype="float32", initializer_range=0.2,
        attention_bias=False, mlp_bias=False)


def micro_batches(gen):
    """Two micro-batches of two right-padded rows; labels are -100 on the prompt and the padding."""
    out = []
    for lengths in ([13, 9], [11, 16]):
        width = max(lengths)
        ids, labels = [], []
        for n in lengths:
            row = torch.randint(3, 64, (n,), generator=gen).tolist()
            prompt = n // 3
            lab = [-100] * prompt + row[prompt:]
            ids.append(row + [0] * (width - n))
            labels.append(lab + [-100] * (width - n))
        out.append({"ids": ids, "labels": labels})
    return out


def summed_loss(model, mb):
    ids = torch.tensor(mb["ids"])
    labels = torch.tensor(mb["labels"])
    logits = model(input_ids=ids).logits
    pred = logits[:, :-1, :].reshape(-1, logits.shape[-1])
    target = labels[:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(pred, target, ignore_index=-100, reduction="sum")


def targets(mb):
    return sum(1 for row in mb["labels"] for v in row[1:] if v != -100)


def schedules():
    """LR multipliers of transformers' schedulers, warmup 3 of 10 steps, for every schedule kind."""
    out = {}
    makers = {
        "cosine": lambda o: get_cosine_schedule_with_warmup(o, 3, 10),
        "linear": lambda o: get_linear_schedule_with_warmup(o, 3, 10),
        "constant": lambda o: get_constant_schedule_with_warmup(o, 3),
    }
    for name, make in makers.items():
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=1.0)
        sched = make(opt)
        lrs = []
        for _ in range(10):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        out[name] = lrs
    return {"warmup_steps": 3, "total_steps": 10, "multipliers": out}


def main(out_dir):
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(99)
    cfg = tiny_config()
    base = LlamaForCausalLM(cfg).float()
    with torch.no_grad():  # non-trivial norm weights
        for name, p in base.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
    tiny_dir = os.path.join(out_dir, "tiny")
    base.save_pretrained(tiny_dir, safe_serialization=True)

    lcfg = LoraConfig(r=HP["rank"], lora_alpha=HP["alpha"], lora_dropout=0.0, target_modules=TARGETS,
                      bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(base, lcfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    model.save_pretrained(os.path.join(out_dir, "init_adapter"))
    os.remove(os.path.join(out_dir, "init_adapter", "README.md"))  # PEFT's model card template
    model.train()

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=HP["lr"], betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=HP["weight_decay"])
    sched = get_cosine_schedule_with_warmup(opt, HP["warmup_steps"], HP["total_steps"])

    gen_batches = torch.Generator().manual_seed(7)
    steps = []
    for step in range(HP["total_steps"]):
        mbs = micro_batches(gen_batches)
        n = sum(targets(mb) for mb in mbs)
        losses = []
        for mb in mbs:
            s = summed_loss(model, mb)
            (s / n).backward()
            losses.append(float(s))
        lr = opt.param_groups[0]["lr"]
        norm = float(torch.nn.utils.clip_grad_norm_(params, HP["clip_norm"]))
        opt.step()
        sched.step()
        opt.zero_grad()
        tensors = {k: v.detach().clone().contiguous() for k, v in model.named_parameters() if "lora_" in k}
        # PEFT names on disk drop the adapter name ("default").
        save_file({k.replace(".default", ""): v for k, v in tensors.items()},
                  os.path.join(out_dir, f"step{step + 1}.safetensors"))
        steps.append({"micro_batches": mbs, "targets": n, "summed_losses": losses, "lr": lr, "grad_norm": norm})

    with open(os.path.join(out_dir, "lora_step.json"), "w") as f:
        json.dump({"hyperparameters": HP, "targets": TARGETS, "steps": steps, "schedules": schedules(),
                   "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                                "peft": __import__("peft").__version__}}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "testdata/train")
