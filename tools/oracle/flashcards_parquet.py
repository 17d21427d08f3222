#!/usr/bin/env python3
"""A small flashcards Parquet file as the Hugging Face Hub serves data sets (pyarrow, snappy,
several row groups, nullable string columns, an extra column), for train/data's reader tests.

Needs pyarrow (pip install pyarrow). The rows match train/data/pairs_test.go's fixtureRows.
Usage: python3 tools/oracle/flashcards_parquet.py [train/data/testdata/flashcards.parquet]
"""
import sys

import pyarrow as pa
import pyarrow.parquet as pq

INSTRUCTION = "Answer this question truthfully"
ROWS = [
    ("What causes scurvy?", "Vitamin C deficiency causes scurvy."),
    ("  What is the normal adult resting heart rate?\n", " 60 to 100 beats per minute. "),
    ("What causes SCURVY?", "Vitamin C  deficiency causes scurvy."),  # duplicate after normalisation
    (None, "An answer without a question."),
    ("A question without an answer?", ""),
    ("", ""),
    ("Quelle est la dose létale? 😀", "Réponse: ça dépend — 致死量."),
    ("   ", "whitespace-only question"),
    ("Which nerve innervates the diaphragm?", "The phrenic nerve (C3–C5)."),
]


def main(out: str) -> None:
    table = pa.table({
        "instruction": pa.array([INSTRUCTION] * len(ROWS), pa.string()),
        "input": pa.array([q for q, _ in ROWS], pa.large_string()),
        "output": pa.array([a for _, a in ROWS], pa.string()),
        "source": pa.array(list(range(len(ROWS))), pa.int64()),
    })
    pq.write_table(table, out, compression="snappy", row_group_size=4)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "train/data/testdata/flashcards.parquet")
