#!/usr/bin/env python3
"""The comparison of bench/smollm2.sh, from the files of its run in OUT (standard library only):
medassist's evaluation (evaluation_results.json), the sweep's runs (runs/NAME/summary.json, best.txt)
and the PyTorch + PEFT run of the best variant's job on the same examples (torch.json, dataset.json).

Writes OUT/comparison.json and OUT/comparison.md, and records the PyTorch run in
OUT/evaluation_results.json under "pytorch_peft".

Usage: python3 bench/smollm2_compare.py OUT
"""
import json
import os
import sys


def load(out, name):
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def trainer_rows(go, torch):
    rows = [{"trainer": "medassist (GoMLX, %s)" % go.get("backend", "backend not recorded"),
             "base_val_ppl": go["base_val_ppl"], "best_val_ppl": go["best_val_ppl"],
             "tokens_per_s": go.get("tokens_per_second"), "wall_s": go.get("wall_seconds")}]
    if torch:
        rows.append({"trainer": "PyTorch %s + PEFT (%d threads)" % (torch["torch"], torch["threads"]),
                     "base_val_ppl": torch["base_val_perplexity"], "best_val_ppl": torch["best_perplexity"],
                     "tokens_per_s": torch["tokens_per_s"], "wall_s": torch["wall_time_s"]})
    return rows


def compare(out):
    best = open(os.path.join(out, "best.txt")).read().split("\t")[0].strip()
    go = load(out, os.path.join("runs", best, "summary.json"))
    torch, ev, ds = load(out, "torch.json"), load(out, "evaluation_results.json"), load(out, "dataset.json")
    res = {"best_variant": best, "trainers": trainer_rows(go, torch)}
    if torch:
        res["best_val_ppl_gap_pct"] = 100 * (go["best_val_ppl"] - torch["best_perplexity"]) / torch["best_perplexity"]
    if ds:
        epochs, bs, accum = (int(ds["config"][k]) for k in ("epochs", "batch-size", "grad-accum"))
        steps = -(-(-(-len(ds["train"]) // bs)) // accum) * epochs
        if torch and torch["steps"] < steps:
            res["note"] = ("PyTorch ran %d of the job's %d optimizer steps (--max-steps or --epochs): its "
                           "perplexity is not comparable, only its tokens/s" % (torch["steps"], steps))
        res["train_tokens"] = epochs * sum(len(e["IDs"]) for e in ds["train"])
        res["projected_train_s"] = {r["trainer"]: res["train_tokens"] / r["tokens_per_s"]
                                    for r in res["trainers"] if r["tokens_per_s"]}
    if ev:
        res["eval"] = {"perplexity": ev["perplexity"], "rouge": ev["rouge"], "manual_prompts": ev["manual_prompts"]}
        if torch:
            ev["pytorch_peft"] = torch
            with open(os.path.join(out, "evaluation_results.json"), "w") as f:
                json.dump(ev, f, indent=2)
    return res


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def markdown(res):
    lines = ["# SmolLM2-135M-Instruct on the flashcards", "",
             "Best variant: `%s`." % res["best_variant"], "",
             "| trainer | base val ppl | best val ppl | tokens/s | wall s |", "|---|---|---|---|---|"]
    for r in res["trainers"]:
        lines.append("| %s | %.3f | %.3f | %s | %s |" % (r["trainer"], r["base_val_ppl"], r["best_val_ppl"],
                                                      fmt(r["tokens_per_s"], ".1f"), fmt(r["wall_s"], ".0f")))
    if "best_val_ppl_gap_pct" in res:
        lines += ["", "medassist's best validation perplexity is %+.2f%% from PyTorch + PEFT's." % res["best_val_ppl_gap_pct"]]
    if "note" in res:
        lines += ["", "**%s.**" % res["note"]]
    if "train_tokens" in res:
        lines += ["", "Training tokens of the job: %d; at the measured speeds: %s." % (res["train_tokens"], ", ".join(
            "%s %.0f s" % (k, v) for k, v in res["projected_train_s"].items()))]
    ev = res.get("eval")
    if ev:
        p, r = ev["perplexity"], ev["rouge"]
        lines += ["", "## Evaluation (ONNX Runtime, validation split)", "",
                  "| | base | fine-tuned |", "|---|---|---|",
                  "| answer perplexity | %s | %.3f |" % (fmt(p.get("base"), ".3f"), p["fine_tuned"])]
        for k in ("rouge1", "rouge2", "rougeL"):
            base = (r.get("base") or {}).get(k, {}).get("f1")
            lines.append("| %s F1 | %s | %.4f |" % (k, fmt(base, ".4f"), r["fine_tuned"][k]["f1"]))
        lines += ["", "## Manual prompts", "", "| prompt | base | fine-tuned |", "|---|---|---|"]
        for m in ev["manual_prompts"]:
            cell = lambda s: (s or "").replace("|", "\\|").replace("\n", " ")
            lines.append("| %s | %s | %s |" % (cell(m["prompt"]), cell(m.get("base")), cell(m["fine_tuned"])))
    return "\n".join(lines) + "\n"


def main():
    out = sys.argv[1]
    res = compare(out)
    with open(os.path.join(out, "comparison.json"), "w") as f:
        json.dump(res, f, indent=2)
    md = markdown(res)
    with open(os.path.join(out, "comparison.md"), "w") as f:
        f.write(md)
    print(md)
    print("results in %s (comparison.md, comparison.json, evaluation_results.json)" % out)


if __name__ == "__main__":
    main()
