#!/usr/bin/env python3
"""Independent check of exported models with the reference `onnx` package.

For each export dir: onnx.checker.check_model(path, full_check=True) (by path, so external data
and models above 2 GB work; full_check runs strict shape inference too), then the I/O layout
DESIGN.md requires: input/output names, element types and dynamic axis names (a decoder with a KV
cache, or a BERT encoder: input_ids, attention_mask, token_type_ids → last_hidden_state and
sentence_embedding).
Prints one report block per dir and exits non-zero when any check fails.
Usage: python3 tools/oracle/onnx_check.py DIR [DIR ...] > testdata/export/onnx_check.txt
"""
import os
import sys

import onnx

TYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16", onnx.TensorProto.INT64: "int64"}


def dims(vi):
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def describe(vi):
    return f"{vi.name} {TYPES.get(vi.type.tensor_type.elem_type, vi.type.tensor_type.elem_type)} {dims(vi)}"


def check_encoder_layout(m):
    """Returns a list of problems with the Optimum feature-extraction layout of a BERT encoder
    (plus sentence_embedding, the pooled output sentence-transformers names so)."""
    problems = []
    want_in = ["input_ids", "attention_mask", "token_type_ids"]
    if [i.name for i in m.graph.input] != want_in:
        problems.append(f"inputs {[i.name for i in m.graph.input]} != {want_in}")
    for i in m.graph.input:
        if dims(i) != ["batch_size", "sequence_length"] or i.type.tensor_type.elem_type != onnx.TensorProto.INT64:
            problems.append(f"{describe(i)}: want int64 [batch_size, sequence_length]")
    outs = {o.name: o for o in m.graph.output}
    hidden = outs.get("last_hidden_state")
    if hidden is None or dims(hidden)[:2] != ["batch_size", "sequence_length"]:
        problems.append("no last_hidden_state [batch_size, sequence_length, hidden]")
    pooled = outs.get("sentence_embedding")
    if pooled is not None and (dims(pooled)[0] != "batch_size" or len(dims(pooled)) != 2):
        problems.append(f"{describe(pooled)}: want [batch_size, hidden]")
    return problems


def check_layout(m):
    """Returns a list of problems with the Optimum / transformers.js decoder layout."""
    problems = []
    ins = {i.name: i for i in m.graph.input}
    outs = {o.name: o for o in m.graph.output}
    if "token_type_ids" in ins:
        return "encoder", check_encoder_layout(m)
    layers = sum(1 for n in ins if n.startswith("past_key_values.") and n.endswith(".key"))
    want_in = ["input_ids", "attention_mask", "position_ids"]
    want_out = ["logits"]
    for i in range(layers):
        want_in += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
        want_out += [f"present.{i}.key", f"present.{i}.value"]
    if [i.name for i in m.graph.input] != want_in:
        problems.append(f"inputs {[i.name for i in m.graph.input]} != {want_in}")
    if [o.name for o in m.graph.output] != want_out:
        problems.append(f"outputs {[o.name for o in m.graph.output]} != {want_out}")
    expect = {
        "input_ids": ["batch_size", "sequence_length"],
        "attention_mask": ["batch_size", "total_sequence_length"],
        "position_ids": ["batch_size", "sequence_length"],
    }
    for name, want in expect.items():
        if name in ins and dims(ins[name]) != want:
            problems.append(f"{name} dims {dims(ins[name])} != {want}")
    if "logits" in outs and dims(outs["logits"])[:2] != ["batch_size", "sequence_length"]:
        problems.append(f"logits dims {dims(outs['logits'])}")
    for i in range(layers):
        for kind in ("key", "value"):
            p, q = ins.get(f"past_key_values.{i}.{kind}"), outs.get(f"present.{i}.{kind}")
            if p is None or q is None:
                continue
            dp, dq = dims(p), dims(q)
            if dp[0] != "batch_size" or dp[2] != "past_sequence_length" or dq[2] != "total_sequence_length":
                problems.append(f"layer {i} {kind}: past {dp}, present {dq}")
            if p.type.tensor_type.elem_type != q.type.tensor_type.elem_type:
                problems.append(f"layer {i} {kind}: past and present types differ")
    return f"{layers} layers", problems


def main(dirs):
    failed = False
    print(f"onnx {onnx.__version__}: onnx.checker.check_model(path, full_check=True)")
    for d in dirs:
        path = os.path.join(d, "model.onnx")
        data = os.path.join(d, "model.onnx.data")
        print(f"\n== {os.path.basename(os.path.normpath(d))}")
        m = onnx.load(path, load_external_data=False)
        size = os.path.getsize(path) + (os.path.getsize(data) if os.path.exists(data) else 0)
        ext = "external data model.onnx.data" if os.path.exists(data) else "inline weights"
        opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in m.opset_import)
        print(f"ir_version {m.ir_version}; opsets {opsets}; {len(m.graph.node)} nodes; "
              f"{len(m.graph.initializer)} initializers; {size / 2**20:.1f} MiB, {ext}")
        ops = sorted({(n.domain or "ai.onnx") + ":" + n.op_type for n in m.graph.node})
        print("ops: " + " ".join(ops))
        for vi in list(m.graph.input)[:4] + list(m.graph.output)[:2]:
            print("  " + describe(vi))
        try:
            onnx.checker.check_model(path, full_check=True)
            print("check_model(full_check=True): OK")
        except Exception as e:  # report every model, then fail
            failed = True
            print(f"check_model(full_check=True): FAILED: {e}")
        layers, problems = check_layout(m)
        if problems:
            failed = True
            print(f"layout: FAILED: {problems}")
        else:
            print(f"layout: OK ({layers}, Optimum/transformers.js names and axes)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
