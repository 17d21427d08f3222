#!/usr/bin/env python3
"""Golden logits and greedy generations from HF transformers for a Llama model dir.

Writes testdata/llama/<name>.json with, for each prompt: the token ids (tokenizer.json, BOS added), the full
float32 logits [seq, vocab] of a forward pass, and the 60 greedy new tokens (no chat template, stop at EOS).
Usage: python3 tools/oracle/llama_golden.py ../shared/models/stories260K testdata/llama/stories260k.json
"""
import json
import sys

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

PROMPTS = [
    "Once upon a time",
    "Lily and her mom went to the park. They saw a big",
    "What are the symptoms of diabetes?",
]
NEW_TOKENS = 60


def main(model_dir: str, out: str) -> None:
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    cases = []
    for prompt in PROMPTS:
        ids = tok(prompt, add_special_tokens=True)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
            gen = model.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False,
                                 eos_token_id=model.config.eos_token_id, pad_token_id=model.config.eos_token_id)
        new = gen[0, len(ids):].tolist()
        cases.append({
            "prompt": prompt,
            "ids": ids,
            "logits": [[round(float(v), 7) for v in row] for row in logits.tolist()],
            "greedy_ids": new,
            "greedy_text": tok.decode(new, skip_special_tokens=True),
        })
    with open(out, "w") as f:
        json.dump({"model": model_dir.rstrip("/").split("/")[-1], "new_tokens": NEW_TOKENS, "cases": cases}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
