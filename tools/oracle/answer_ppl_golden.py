#!/usr/bin/env python3
"""Answer-token perplexity of stories260K on flashcards in chat format, from transformers.

The first N complete flashcards (white space trimmed) become the conversation [system, user: input,
assistant: output], rendered with the model's chat template (transformers' apply_chat_template) and
tokenized with BOS by HF tokenizers from tokenizer.json (the project's reference tokenizer: it
keeps the "▁" that tokenizer.json's normalizer puts after special tokens). Labels are -100 on the tokens of the inference prompt (the same conversation without the
answer, with the generation prompt) and equal the ids from the answer through the first </s> after
it; later tokens are dropped. Cards longer than max_position_embeddings are skipped.
NLL: -log_softmax(logits[i-1])[ids[i]] in float64 for each labelled i; perplexity = exp(sum / count).
Writes testdata/eval/answer_ppl_stories260k.json.
Usage: python3 tools/oracle/answer_ppl_golden.py ../shared/models/stories260K \
    ../shared/data/medical_flashcards/flashcards.jsonl testdata/eval/answer_ppl_stories260k.json
"""
import json
import math
import sys

import torch
from tokenizers import Tokenizer
from transformers import AutoTokenizer, LlamaForCausalLM

N = 8
SYSTEM = "You are a careful medical assistant. Answer the health question accurately and concisely."


def encode(tok, tk, question, answer):
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": answer}], tokenize=False)
    prompt_ids = tk.encode(prompt, add_special_tokens=True).ids
    ids = tk.encode(full, add_special_tokens=True).ids
    assert ids[: len(prompt_ids)] == prompt_ids, "prompt tokens are not a prefix"
    end = ids.index(tok.eos_token_id, len(prompt_ids)) + 1
    ids = ids[:end]
    labels = [-100] * len(prompt_ids) + ids[len(prompt_ids):]
    return ids, labels


def main(model_dir: str, cards_path: str, out: str) -> None:
    tok = AutoTokenizer.from_pretrained(model_dir)
    tk = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager").eval()
    examples = []
    with open(cards_path) as f:
        for line in f:
            c = json.loads(line)
            q, a = (c.get("input") or "").strip(), (c.get("output") or "").strip()
            if not q or not a:
                continue
            ids, labels = encode(tok, tk, q, a)
            if len(ids) > model.config.max_position_embeddings:
                continue
            examples.append({"question": q, "answer": a, "ids": ids, "labels": labels})
            if len(examples) == N:
                break
    total, count = 0.0, 0
    with torch.no_grad():
        for ex in examples:
            logits = model(torch.tensor([ex["ids"]])).logits[0].double()
            logp = torch.log_softmax(logits, dim=-1)
            nll = 0.0
            n = 0
            for i in range(1, len(ex["ids"])):
                if ex["labels"][i] != -100:
                    nll -= logp[i - 1, ex["labels"][i]].item()
                    n += 1
            ex["nll"], ex["tokens"] = nll, n
            total += nll
            count += n
    with open(out, "w") as f:
        json.dump({"system": SYSTEM, "tokens": count, "perplexity": math.exp(total / count), "examples": examples}, f)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
