// llama.cpp as a peer of `medassist bench`: llama-bench on a GGUF file with the same prompt length,
// number of new tokens, threads and runs, printed as one JSON object like `medassist bench --json`.
// Prefill is llama-bench's pp test (PROMPT tokens in one batch; its time stands for the time to
// first token); decode is its tg test at depth PROMPT (NEW tokens, one at a time, after a
// PROMPT-token context, as `medassist bench` decodes after its prompt). llama-bench warms up first.
//
//   node bench/llamacpp.mjs --bench PATH/llama-bench --model F.gguf --prompt-tokens 128 --new-tokens 64 --runs 3 --threads 2
import { spawnSync } from "node:child_process";
import fs from "node:fs";

function parseArgs(argv) {
  const a = { bench: "", model: "", promptTokens: 128, newTokens: 64, runs: 3, threads: 2 };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === "--bench") a.bench = v;
    else if (k === "--model") a.model = v;
    else if (k === "--prompt-tokens") a.promptTokens = +v;
    else if (k === "--new-tokens") a.newTokens = +v;
    else if (k === "--runs") a.runs = +v;
    else if (k === "--threads") a.threads = +v;
    else throw new Error(`unknown flag ${k}`);
  }
  if (!a.bench || !a.model) throw new Error("--bench PATH/llama-bench and --model F.gguf are required");
  return a;
}

function median(v) {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// llamaBench runs one llama-bench test under /usr/bin/time (for the peak RSS) and returns its
// per-run tokens/s and the process's peak RSS in bytes.
function llamaBench(a, flags) {
  const args = ["-f", "%M", a.bench, "-m", a.model, "-t", String(a.threads), "-r", String(a.runs), "-o", "json", ...flags];
  const r = spawnSync("/usr/bin/time", args, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`llama-bench ${flags.join(" ")} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const tests = JSON.parse(r.stdout);
  if (tests.length !== 1) throw new Error(`llama-bench printed ${tests.length} tests, want 1`);
  const rssKiB = +r.stderr.trim().split("\n").at(-1);
  return { ts: tests[0].samples_ts, test: tests[0], rss: rssKiB * 1024 };
}

const a = parseArgs(process.argv.slice(2));
const pp = llamaBench(a, ["-p", String(a.promptTokens), "-n", "0"]);
const tg = llamaBench(a, ["-p", "0", "-n", String(a.newTokens), "-d", String(a.promptTokens)]);
const ttft = pp.ts.map((ts) => (1000 * a.promptTokens) / ts);
const t = tg.test;
const out = {
  model: a.model, peer: `llama.cpp ${t.build_commit} (build ${t.build_number}), ${t.model_type}, ${t.backends}`,
  threads: a.threads, prompt_tokens: a.promptTokens, new_tokens: a.newTokens, runs: a.runs,
  prefill_tokens_per_s: median(pp.ts), decode_tokens_per_s: median(tg.ts), ttft_ms: median(ttft),
  weight_bytes: fs.statSync(a.model).size, peak_rss_bytes: Math.max(pp.rss, tg.rss),
  run_decode_tokens_per_s: tg.ts, run_ttft_ms: ttft,
};
console.log(JSON.stringify(out));
