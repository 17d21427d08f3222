#!/usr/bin/env python3
"""Golden data for `medassist import` from the PyPI `gguf` package (gguf-py) and transformers.

Writes under testdata/gguf/:

quants.gguf     a small GGUF v3 file written by gguf-py's GGUFWriter (alignment 64): one tensor of each
                type medassist dequantizes (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
                Q6_K; gguf-py's own quantizers where it has one, random blocks with finite scales for
                the K types), a 3-D tensor, and metadata of every value type.
quants.json     what gguf-py reads back: each tensor's type, shape and dequantized float32 values
                (base64, little-endian) with their sha256, and each metadata key's type and value.
smollm2.json    for SmolLM2-135M-Instruct.Q4_1.gguf loaded by transformers (from_pretrained(...,
                gguf_file=...), float32): the config, the sha256 of every weight in Hugging Face naming
                and layout (checked here to equal gguf-py's dequantization with transformers' Q/K
                un-permutation), logits on a few prompts (at every position, the top 16 ids and 48
                fixed ids), and greedy continuations of raw and chat prompts.

Usage: python3 tools/oracle/gguf_golden.py [--shared ../shared] [--out testdata/gguf]
"""
import argparse
import base64
import hashlib
import json
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = 20240612
SMOLLM2 = os.path.join("models", "smollm2-135m-instruct-gguf", "SmolLM2-135M-Instruct.Q4_1.gguf")

QUANTIZABLE = [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1]
K_TYPES = [Q.Q4_K, Q.Q5_K, Q.Q6_K]

# Raw prompts (no digits: transformers' GGUF tokenizer drops llama.cpp's digit splitting, so
# the ids of these prompts are the same under both) and chat prompts (user message only).
LOGIT_PROMPTS = [
    "The kidney filters blood and",
    "Question: What does insulin do?\nAnswer:",
    "<|im_start|>user\nWhat is a fever?<|im_end|>\n<|im_start|>assistant\n",
]
RAW_PROMPTS = ["The heart pumps blood through", "Once upon a time, a doctor"]
CHAT_PROMPTS = ["What is the loop of Henle?", "How should I treat a mild burn at home?"]
GREEDY_TOKENS = 24
FIXED_LOGIT_IDS = 48


def f32_b64(a):
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode()


def sha256_f32(a):
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()


def random_k_blocks(rng, qtype, n_blocks):
    """Random K-quant blocks whose f16 scales are finite (every other byte is arbitrary)."""
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    scales = rng.normal(0, 0.02, size=(n_blocks, 2)).astype(np.float16).view(np.uint8)
    if qtype == Q.Q6_K:
        blocks[:, -2:] = scales[:, :2]  # d is the last field
    else:
        blocks[:, 0:4] = scales  # d, dmin
    return blocks


def quant_tensors(rng):
    out = []
    for qt in QUANTIZABLE:
        x = rng.normal(0, 1, size=(3, 512)).astype(np.float32)
        x[0, :8] = [0.0, -0.0, 1e-8, -65504.0, 1e-40, 0.5, -2.0, 7.25]
        if qt in (Q.F32, Q.F16, Q.BF16):  # no NaN can come out of a block scale
            x[0, 8:11] = [np.inf, -np.inf, 3.0e38]
        raw = gguf.quants.quantize(x, qt)
        out.append((qt.name.lower(), qt, raw))
    for qt in K_TYPES:
        rows, cols = 2, 512
        block, type_size = gguf.GGML_QUANT_SIZES[qt]
        raw = random_k_blocks(rng, qt, rows * cols // block).reshape(rows, cols // block * type_size)
        out.append((qt.name.lower(), qt, raw))
    out.append(("three_d", Q.F32, rng.normal(0, 1, size=(2, 3, 32)).astype(np.float32)))
    return out


METADATA = [
    ("test.uint8", V.UINT8, 200), ("test.int8", V.INT8, -100), ("test.uint16", V.UINT16, 60000),
    ("test.int16", V.INT16, -30000), ("test.uint32", V.UINT32, 4000000000), ("test.int32", V.INT32, -2000000000),
    ("test.float32", V.FLOAT32, 1e-5), ("test.uint64", V.UINT64, 2 ** 40 + 3), ("test.int64", V.INT64, -(2 ** 40)),
    ("test.float64", V.FLOAT64, 0.1), ("test.bool", V.BOOL, True), ("test.string", V.STRING, "héllo <|im_end|> ✓"),
]
ARRAYS = [
    ("test.array.string", V.STRING, ["a", "", "ünï", "<s>"]), ("test.array.int32", V.INT32, [1, -2, 3]),
    ("test.array.float32", V.FLOAT32, [0.5, -1.25]), ("test.array.uint8", V.UINT8, [1, 255]),
    ("test.array.bool", V.BOOL, [True, False]),
]


def write_quants(out_dir):
    rng = np.random.default_rng(SEED)
    path = os.path.join(out_dir, "quants.gguf")
    w = gguf.GGUFWriter(path, arch="test")
    w.add_custom_alignment(64)
    for key, vt, val in METADATA:
        w.add_key_value(key, val, vt)
    for key, vt, val in ARRAYS:
        w.add_key_value(key, val, V.ARRAY, sub_type=vt)
    tensors = quant_tensors(rng)
    for name, qt, raw in tensors:
        w.add_tensor(name, raw, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    r = gguf.GGUFReader(path)
    golden = {"alignment": int(r.alignment), "tensors": [], "metadata": {}}
    for t in r.tensors:
        deq = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = [int(d) for d in reversed(t.shape.tolist())]
        golden["tensors"].append({
            "name": t.name, "type": t.tensor_type.name, "shape": shape,
            "sha256": sha256_f32(deq), "values": f32_b64(deq.reshape(-1)),
        })
    for key, vt, val in METADATA:
        golden["metadata"][key] = {"type": vt.name, "value": field_value(r.fields[key])}
    for key, vt, val in ARRAYS:
        golden["metadata"][key] = {"type": "ARRAY", "element_type": vt.name, "value": field_value(r.fields[key])}
    with open(os.path.join(out_dir, "quants.json"), "w") as f:
        json.dump(golden, f, indent=1)
    print("wrote", path, os.path.getsize(path), "bytes;", len(golden["tensors"]), "tensors")


def field_value(field):
    v = field.contents()
    if isinstance(v, float):
        return repr(np.float32(v).item()) if field.types[-1] == V.FLOAT32 else repr(v)
    if isinstance(v, list) and v and isinstance(v[0], float):
        return [repr(np.float32(x).item()) for x in v]
    return v


def gguf_py_weights(path, n_heads, n_kv_heads):
    """gguf-py's dequantization of every tensor, Q/K un-permuted as transformers does it."""
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    proc = LlamaTensorProcessor(config={"num_attention_heads": n_heads, "num_key_value_heads": n_kv_heads})
    out = {}
    for t in gguf.GGUFReader(path).tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        out[t.name] = proc.process(w, t.name).weights
    return out


GGUF_TO_HF = {
    "token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head",
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}


def hf_name(gguf_name):
    parts = gguf_name.split(".")
    if parts[0] == "blk":
        return f"model.layers.{parts[1]}.{GGUF_TO_HF[parts[2]]}.{parts[3]}"
    return f"{GGUF_TO_HF[parts[0]]}.{parts[1]}"


def write_smollm2(shared, out_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = os.path.join(shared, SMOLLM2)
    folder, name = os.path.split(path)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    cfg = model.config
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}

    ref = gguf_py_weights(path, cfg.num_attention_heads, cfg.num_key_value_heads)
    tensors = {}
    for gname, w in ref.items():
        hname = hf_name(gname)
        if not np.array_equal(state[hname].view(np.uint32), w.view(np.uint32)):
            raise SystemExit(f"transformers' {hname} differs from gguf-py's {gname}")
        tensors[hname] = {"gguf": gname, "shape": list(w.shape), "sha256": sha256_f32(w),
                          "head": [float(x) for x in w.reshape(-1)[:4]]}
    print("tensors: transformers == gguf-py on", len(tensors))

    rng = np.random.default_rng(SEED)
    fixed = sorted(rng.choice(cfg.vocab_size, size=FIXED_LOGIT_IDS, replace=False).tolist())
    logits = []
    for prompt in LOGIT_PROMPTS:
        ids = tok(prompt, add_special_tokens=True)["input_ids"]
        with torch.no_grad():
            lg = model(torch.tensor([ids])).logits[0].float().numpy()
        rows = []
        for row in lg:
            top = np.argsort(-row, kind="stable")[:16].tolist()
            pick = sorted(set(top) | set(fixed))
            rows.append({"ids": pick, "values": [float(row[i]) for i in pick], "argmax": int(top[0])})
        logits.append({"prompt": prompt, "ids": ids, "positions": rows})

    greedy = []
    for kind, prompts in (("raw", RAW_PROMPTS), ("chat", CHAT_PROMPTS)):
        for prompt in prompts:
            if kind == "raw":
                ids = tok(prompt, add_special_tokens=True)["input_ids"]
            else:
                ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True)
                if isinstance(ids, dict) or hasattr(ids, "keys"):
                    ids = ids["input_ids"]
            with torch.no_grad():
                gen = model.generate(torch.tensor([ids]), max_new_tokens=GREEDY_TOKENS, do_sample=False,
                                     eos_token_id=cfg.eos_token_id, pad_token_id=cfg.eos_token_id)
            new = gen[0, len(ids):].tolist()
            greedy.append({"kind": kind, "prompt": prompt, "prompt_ids": list(ids), "ids": new,
                           "text": tok.decode(new, skip_special_tokens=True)})
            print(kind, repr(prompt), "->", repr(greedy[-1]["text"]))

    golden = {
        "file": SMOLLM2,
        "config": {k: getattr(cfg, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                 "num_attention_heads", "num_key_value_heads", "vocab_size",
                                                 "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings",
                                                 "bos_token_id", "eos_token_id")},
        "rope_theta": float(getattr(cfg, "rope_theta", None) or cfg.rope_parameters["rope_theta"]),
        "tensors": tensors, "logits": logits, "greedy_new_tokens": GREEDY_TOKENS, "greedy": greedy,
    }
    with open(os.path.join(out_dir, "smollm2.json"), "w") as f:
        json.dump(golden, f, indent=None, separators=(",", ":"))
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(ROOT, "testdata", "gguf"))
    ap.add_argument("--only", choices=["quants", "smollm2"])
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.only in (None, "quants"):
        write_quants(args.out)
    if args.only in (None, "smollm2"):
        write_smollm2(args.shared, args.out)


if __name__ == "__main__":
    main()
