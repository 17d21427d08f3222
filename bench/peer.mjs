// The peer of `medassist bench`: transformers.js (@huggingface/transformers on onnxruntime-node)
// generating greedily from the same exported model.onnx, with the same prompt ids, prompt length,
// number of new tokens and threads. Prints one JSON object like `medassist bench --json`.
//
//   node bench/peer.mjs --model DIR --prompt-tokens 128 --new-tokens 64 --runs 3 --threads 2
//
// DIR is a medassist export (model.onnx [+ model.onnx.data], config.json, tokenizer files);
// transformers.js wants the Hugging Face repository layout (onnx/model.onnx), so a folder of
// symbolic links is laid out under bench/models/ first.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { AutoModelForCausalLM, Tensor, env } from "@huggingface/transformers";

const here = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const a = { model: "", promptTokens: 128, newTokens: 64, runs: 3, threads: 2 };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === "--model") a.model = v;
    else if (k === "--prompt-tokens") a.promptTokens = +v;
    else if (k === "--new-tokens") a.newTokens = +v;
    else if (k === "--runs") a.runs = +v;
    else if (k === "--threads") a.threads = +v;
    else throw new Error(`unknown flag ${k}`);
  }
  if (!a.model) throw new Error("--model DIR is required");
  return a;
}

// layout links an export into the Hub layout transformers.js reads: DIR/onnx/model.onnx.
function layout(dir) {
  const name = path.basename(path.resolve(dir));
  const root = path.join(here, "models", name);
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(path.join(root, "onnx"), { recursive: true });
  for (const f of fs.readdirSync(dir)) {
    const src = path.resolve(dir, f);
    const dst = f.startsWith("model.onnx") ? path.join(root, "onnx", f) : path.join(root, f);
    fs.symlinkSync(src, dst);
  }
  return { root: path.join(here, "models"), name };
}

// benchPrompt matches cmd/medassist/cmd_bench.go: BOS, then a fixed pseudo-random walk over ids.
function benchPrompt(config, n) {
  const ids = [BigInt(config.bos_token_id ?? 1)];
  let x = 12345;
  while (ids.length < n) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    ids.push(BigInt(3 + ((x >>> 8) % (config.vocab_size - 3))));
  }
  return ids.slice(0, n);
}

function median(v) {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// Timer is a transformers.js streamer that stamps every generated token.
class Timer {
  constructor() { this.times = []; this.prompt = true; }
  put() {
    if (this.prompt) { this.prompt = false; return; } // the first put is the prompt itself
    this.times.push(performance.now());
  }
  end() {}
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const { root, name } = layout(a.model);
  env.localModelPath = root;
  env.allowRemoteModels = false;
  const loadStart = performance.now();
  const model = await AutoModelForCausalLM.from_pretrained(name, {
    dtype: "fp32", // selects onnx/model.onnx; the graph's own types (int4 weights etc.) are what run
    device: "cpu",
    session_options: { intraOpNumThreads: a.threads, interOpNumThreads: 1 },
  });
  const loadS = (performance.now() - loadStart) / 1000;
  const ids = benchPrompt(model.config, a.promptTokens);
  const input_ids = new Tensor("int64", BigInt64Array.from(ids), [1, ids.length]);
  const attention_mask = new Tensor("int64", new BigInt64Array(ids.length).fill(1n), [1, ids.length]);
  const generate = async (n) => {
    const timer = new Timer();
    const start = performance.now();
    await model.generate({ input_ids, attention_mask, max_new_tokens: n, min_new_tokens: n, do_sample: false, streamer: timer });
    return { start, times: timer.times };
  };
  await generate(4); // warm-up, as medassist bench does
  const ttft = [], decode = [];
  for (let r = 0; r < a.runs; r++) {
    const { start, times } = await generate(a.newTokens);
    ttft.push(times[0] - start);
    decode.push((times.length - 1) / ((times.at(-1) - times[0]) / 1000));
  }
  const ttftMs = median(ttft);
  const out = {
    model: a.model, peer: "transformers.js 4.3.1 + onnxruntime-node 1.30.0", threads: a.threads,
    prompt_tokens: a.promptTokens, new_tokens: a.newTokens, runs: a.runs,
    prefill_tokens_per_s: a.promptTokens / (ttftMs / 1000), decode_tokens_per_s: median(decode),
    ttft_ms: ttftMs, load_s: loadS, peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    run_decode_tokens_per_s: decode, run_ttft_ms: ttft,
  };
  console.log(JSON.stringify(out));
  await model.dispose();
}

main().catch((e) => { console.error(e); process.exit(1); });
