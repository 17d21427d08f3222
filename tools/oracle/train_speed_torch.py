#!/usr/bin/env python3
"""A medassist LoRA job in PyTorch + HF PEFT: the speed and quality reference for medassist's GoMLX
trainer (bench/train.sh and bench/smollm2.sh run both on the same machine, one after the other).

Input: the same prepared examples ({"train": [{"IDs": [...], "Labels": [...]}], "val": [...]}),
written either by the Go benchmark (train/bench_test.go, BenchmarkStoriesFlashcards: the stories260K
job below) or by `medassist dataset --train-dir OUT/runs/NAME`, whose "config" (the run's
`medassist train` flags) then sets the job: rank, alpha, dropout, targets, lr, schedule, warmup,
weight decay, batch, grad-accum, epochs, clip-norm, seed, and the base model (--model overrides it).
The stories260K job: r 16, alpha 32, dropout 0.05, all seven projections, AdamW (torch defaults, no weight
decay), lr 2e-3, cosine schedule with 10 warmup steps, batch 2, grad-accum 4, 2 epochs, clip-norm 1,
loss = mean next-token cross-entropy over the answer tokens of each optimizer step, sequences
right-padded per micro-batch. Validation perplexity over the answer tokens before training and
after each epoch. tokens/s counts real (non-padding) tokens over the time spent in optimizer steps.

Usage: python3 tools/oracle/train_speed_torch.py DATASET.json OUT.json [--model DIR] [--threads N]
       [--max-steps N]
"""
import argparse
import json
import math
import random
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import (LlamaForCausalLM, get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                          get_linear_schedule_with_warmup)

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# The stories260K job of BenchmarkStoriesFlashcards, by `medassist train` flag name.
STORIES_JOB = {"base": "../shared/models/stories260K", "rank": "16", "alpha": "32", "dropout": "0.05",
               "targets": ",".join(TARGETS), "lr": "2e-3", "schedule": "cosine", "warmup-steps": "10",
               "weight-decay": "0", "batch-size": "2", "grad-accum": "4", "epochs": "2", "clip-norm": "1",
               "seed": "42"}
SCHEDULES = {"cosine": get_cosine_schedule_with_warmup, "linear": get_linear_schedule_with_warmup,
             "constant": lambda opt, warmup, total: get_constant_schedule_with_warmup(opt, warmup)}


def job_config(ds):
    """The job's hyperparameters: the Go run's own configuration when the dataset file carries it."""
    cfg = dict(STORIES_JOB)
    cfg.update(ds.get("config") or {})
    targets = cfg["targets"].strip("[]").replace(" ", "")
    return {
        "base": cfg["base"], "rank": int(cfg["rank"]), "alpha": float(cfg["alpha"]),
        "dropout": float(cfg["dropout"]), "targets": [t for t in targets.split(",") if t],
        "lr": float(cfg["lr"]), "schedule": cfg["schedule"], "warmup": int(cfg["warmup-steps"]),
        "weight_decay": float(cfg["weight-decay"]), "batch": int(cfg["batch-size"]),
        "accum": int(cfg["grad-accum"]), "epochs": int(cfg["epochs"]), "clip": float(cfg["clip-norm"]),
        "seed": int(cfg["seed"]),
    }


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
    ap.add_argument("--model", default="", help="base model dir (default: the dataset's base, else stories260K)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--epochs", type=int, default=0, help="override the job's epochs (0: the job's)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop each epoch after this many steps (0: all)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with open(args.dataset) as f:
        ds = json.load(f)
    job = job_config(ds)
    if args.epochs:
        job["epochs"] = args.epochs
    torch.manual_seed(job["seed"])
    random.seed(job["seed"])
    train, val = ds["train"], ds["val"]

    start = time.time()
    base = LlamaForCausalLM.from_pretrained(args.model or job["base"], torch_dtype=torch.float32,
                                            attn_implementation="eager")
    model = get_peft_model(base, LoraConfig(r=job["rank"], lora_alpha=job["alpha"], lora_dropout=job["dropout"],
                                            target_modules=job["targets"], bias="none", task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    bs, accum = job["batch"], job["accum"]
    steps_per_epoch = math.ceil(math.ceil(len(train) / bs) / accum)
    total = steps_per_epoch * job["epochs"]
    opt = torch.optim.AdamW(params, lr=job["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=job["weight_decay"])
    sched = SCHEDULES[job["schedule"]](opt, job["warmup"], total)

    base_ppl = perplexity(model, val)
    print(f"base val perplexity {base_ppl:.3f}", flush=True)
    val_ppl, train_time, tokens = [], 0.0, 0
    steps = 0
    for epoch in range(job["epochs"]):
        order = list(range(len(train)))
        random.Random(job["seed"] + epoch).shuffle(order)
        micro = [order[i:i + bs] for i in range(0, len(order), bs)]
        for s in range(steps_per_epoch):
            if args.max_steps and s >= args.max_steps:
                break
            t0 = time.time()
            group = [batch([train[i] for i in mb]) for mb in micro[s * accum:(s + 1) * accum]]
            n = sum(int((lab[:, 1:] != -100).sum()) for _, lab, _ in group)
            for ids, labels, ntok in group:
                loss, _ = summed_nll(model, ids, labels)
                (loss / n).backward()
                tokens += ntok
            if job["clip"] > 0:
                torch.nn.utils.clip_grad_norm_(params, job["clip"])
            opt.step()
            sched.step()
            opt.zero_grad()
            steps += 1
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
        "best_perplexity": min(val_ppl), "wall_time_s": wall, "train_time_s": train_time, "tokens": tokens,
        "tokens_per_s": tokens / train_time, "steps": steps, "hyperparameters": job,
    }
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
