#!/usr/bin/env python3
"""Golden ROUGE-1/2/L scores from Google's rouge-score package (use_stemmer=False).

Pairs: flashcard answers against perturbed versions of themselves and against other answers, plus edge
cases (empty, punctuation only, non-ASCII, repeated words). Writes testdata/eval/rouge_golden.json.
Usage: python3 tools/oracle/rouge_golden.py ../shared/data/medical_flashcards/flashcards.jsonl testdata/eval/rouge_golden.json
"""
import json
import random
import sys

from rouge_score import rouge_scorer

EDGE = [
    ("", ""), ("", "something"), ("something", ""), ("!!! ???", "..."),
    ("The the THE the", "the"), ("Café naïve 東京 résumé", "cafe naive resume"),
    ("Aspirin 81mg daily.", "aspirin 81 mg daily"), ("a b c d e", "e d c b a"),
    ("x-ray and CT-scan", "x ray and ct scan"), ("one", "one"),
]


def perturb(rng, text):
    words = text.split()
    if not words:
        return text
    out = []
    for w in words:
        r = rng.random()
        if r < 0.15:
            continue
        if r < 0.25:
            out.append(rng.choice(words))
        out.append(w.upper() if rng.random() < 0.1 else w)
    if rng.random() < 0.3:
        rng.shuffle(out)
    return " ".join(out)


def main(flashcards, out):
    rng = random.Random(7)
    answers = []
    with open(flashcards) as f:
        for line in f:
            row = json.loads(line)
            if row.get("output", "").strip():
                answers.append(row["output"].strip())
    rng.shuffle(answers)
    pairs = list(EDGE)
    for a in answers[:150]:
        pairs.append((a, perturb(rng, a)))
    for a, b in zip(answers[150:250], answers[250:350]):
        pairs.append((a, b))
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    cases = []
    for ref, pred in pairs:
        s = scorer.score(ref, pred)
        cases.append({"reference": ref, "prediction": pred,
                      **{k: {"precision": v.precision, "recall": v.recall, "f1": v.fmeasure} for k, v in s.items()}})
    with open(out, "w") as f:
        json.dump({"use_stemmer": False, "cases": cases}, f, indent=0, ensure_ascii=False)
    print(f"wrote {len(cases)} pairs to {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
