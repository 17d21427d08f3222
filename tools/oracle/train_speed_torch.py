#!/usr/bin/env python3
"""The stories260K flashcards LoRA job in PyTorch + HF PEFT: the speed and quality reference for
medassist's GoMLX trainer (bench/train.sh runs both on the same machine, one after the other).

Input: dataset.json written by the Go benchmark (train/bench_test.go, BenchmarkStoriesFlashcards):
the same prepared examples ({"train": [{"IDs": [...], "Labels": [...]}], "val": [...]}).
Same job: r 16, alpha 32, dropout 0.05, all seven projections, AdamW (torch defaults, no weight
decay), lr 2e-3, cosine schedule with 10 warmup steps, batch 2, grad-accum 4, 2 epochs, clip-norm 1,
loss = mean next-token cross-entropy over the answer tokens of each optimizer step, sequences
right-padded per micro-batch. Validation perplexity over the answer tokens before training and
after each epoch. tokens/s counts real (non-padding) tokens over the time spent in optimizer steps.

Usage: python3 tools/oracle/train_speed_torch.py DATASET.json OUT.json [--model DIR] [--threads N]
"""
import argparse
import json
import math
import random
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaForCausalLM, get_cosine_schedule_with_warmup

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def batch(examples):
    width = max(len(e["IDs"]) for e in examples)
    ids = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, :len(e["IDs"])] = torch.tensor(e["IDs"])
        labels[i, :len(e["Labels"])] = torch.tensor(e["Labels"])
    return ids, labels, sum(len(e["IDs"]) for e in examples)


def summed_nll(model, ids, labels):
    logits = model(input_ids=ids).logits[:, :-1, :]
    target = labels[:, 1:]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                             ignore_index=-100, reduction="sum"), int((target != -100).sum())


@torch.no_grad()
def perplexity(model, examples, rows=4):
    model.eval()
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["IDs"]))
    total, count = 0.0, 0
    for lo in range(0, len(order), rows):
        ids, labels, _ = batch([examples[i] for i in order[lo:lo + rows]])
        s, n = summed_nll(model, ids, labels)
        total += float(s)
        count += n
    model.train()
    return math.exp(total / count)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("out")
    ap.add_argument("--model", default="../shared/models/stories260K")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(42)
    random.seed(42)
    with open(args.dataset) as f:
        ds = json.load(f)
    train, val = ds["train"], ds["val"]

    start = time.time()
    base = LlamaForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32, attn_implementation="eager")
    model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=TARGETS,
                                            bias="none", task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    bs, accum = 2, 4
    steps_per_epoch = math.ceil(math.ceil(len(train) / bs) / accum)
    total = steps_per_epoch * args.epochs
    opt = torch.optim.AdamW(params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    sched = get_cosine_schedule_with_warmup(opt, 10, total)

    base_ppl = perplexity(model, val)
    print(f"base val perplexity {base_ppl:.3f}", flush=True)
    val_ppl, train_time, tokens = [], 0.0, 0
    for epoch in range(args.epochs):
        order = list(range(len(train)))
        random.Random(42 + epoch).shuffle(order)
        micro = [order[i:i + bs] for i in range(0, len(order), bs)]
        for s in range(steps_per_epoch):
            t0 = time.time()
            group = [batch([train[i] for i in mb]) for mb in micro[s * accum:(s + 1) * accum]]
            n = sum(int((lab[:, 1:] != -100).sum()) for _, lab, _ in group)
            for ids, labels, ntok in group:
                loss, _ = summed_nll(model, ids, labels)
                (loss / n).backward()
                tokens += ntok
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            train_time += time.time() - t0
            if s % 50 == 0:
                print(f"epoch {epoch + 1} step {s}/{steps_per_epoch} {tokens / train_time:.0f} tokens/s", flush=True)
        val_ppl.append(perplexity(model, val))
        print(f"epoch {epoch + 1}: val perplexity {val_ppl[-1]:.3f}", flush=True)
    wall = time.time() - start
    res = {
        "engine": "pytorch+peft", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "train_examples": len(train), "val_examples": len(val),
        "base_val_perplexity": base_ppl, "val_perplexity": val_ppl,
        "perplexity_drop_pct": 100 * (1 - val_ppl[-1] / base_ppl),
        "wall_time_s": wall, "tokens_per_s": tokens / train_time, "steps": total,
    }
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
