#!/usr/bin/env python3
"""Token ids and the transformers perplexity of the first flashcards, for the quantization tests.

Each of the first N flashcards with all fields present is rendered as plain text
("Question: {input}\nAnswer: {output}"), tokenized with the model's tokenizer.json (BOS added),
and scored by transformers in float32. Perplexity is exp(mean NLL) over every predicted token
(all tokens after BOS, question and answer alike), pooled over all cards. A card longer than
max_position_embeddings is cut to that many tokens.
Usage: python3 tools/oracle/flashcard_ppl.py ../shared/models/stories260K \
    ../shared/data/medical_flashcards/flashcards.jsonl testdata/export/flashcards_stories260k.json
"""
import json
import math
import sys

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

N = 200
TEMPLATE = "Question: {input}\nAnswer: {output}"


def main(model_dir: str, cards_path: str, out: str) -> None:
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager").eval()
    seqs = []
    with open(cards_path) as f:
        for line in f:
            c = json.loads(line)
            if not (c.get("instruction") and c.get("input") and c.get("output")):
                continue
            ids = tok(TEMPLATE.format(**c), add_special_tokens=True)["input_ids"]
            seqs.append(ids[: model.config.max_position_embeddings])
            if len(seqs) == N:
                break
    nll, count = 0.0, 0
    with torch.no_grad():
        for ids in seqs:
            logits = model(torch.tensor([ids])).logits[0].double()
            logp = torch.log_softmax(logits[:-1], dim=-1)
            target = torch.tensor(ids[1:])
            nll -= logp[torch.arange(len(ids) - 1), target].sum().item()
            count += len(ids) - 1
    with open(out, "w") as f:
        json.dump({"template": TEMPLATE, "cards": len(seqs), "tokens": count,
                   "perplexity": math.exp(nll / count), "ids": seqs}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
