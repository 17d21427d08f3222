// Summarises one bench/engine.sh run folder as Markdown: the bandwidth floor, medassist against it,
// int4 against float32, peak memory against the weights, medassist against transformers.js, and
// medassist against llama.cpp (per-round ratios, so that their spread shows).
//
//   node bench/summary.mjs out/bench/engine/<stamp>
import fs from "node:fs";
import path from "node:path";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node bench/summary.mjs RUN_DIR");
  process.exit(2);
}
const read = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
const bwRuns = ["membw-before.json", "membw-after.json"].map(read);
const bw = Math.max(...bwRuns.map((r) => r.best_gb_per_s)) * 1e9; // bytes/s
const kinds = fs.readFileSync(path.join(dir, "models.txt"), "utf8").split("\n").filter(Boolean).map((l) => l.split("=")[0]);
// A model's runs may be split over rounds (medassist-KIND-r1.json, -r2.json, ...): pool them.
const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const roundFiles = (who, kind) =>
  fs.readdirSync(dir).filter((f) => new RegExp(`^${who}-${kind}(-r\\d+)?\\.json$`).test(f)).sort();
const pooled = (who, kind) => {
  const files = roundFiles(who, kind);
  if (files.length === 0) throw new Error(`${dir}: no ${who}-${kind}*.json`);
  const runs = files.map(read);
  const r = { ...runs[0], rounds: runs.length };
  r.run_decode_tokens_per_s = runs.flatMap((x) => x.run_decode_tokens_per_s);
  r.run_ttft_ms = runs.flatMap((x) => x.run_ttft_ms);
  r.decode_tokens_per_s = median(r.run_decode_tokens_per_s);
  r.ttft_ms = median(r.run_ttft_ms);
  r.prefill_tokens_per_s = r.prompt_tokens / (r.ttft_ms / 1000);
  r.peak_rss_bytes = Math.max(...runs.map((x) => x.peak_rss_bytes));
  if (r.weight_bytes) r.peak_rss_over_weights = r.peak_rss_bytes / r.weight_bytes;
  return r;
};
const ours = Object.fromEntries(kinds.map((k) => [k, pooled("medassist", k)]));
const peer = Object.fromEntries(kinds.map((k) => [k, pooled("peer", k)]));
// llama.cpp ran on the kinds listed in llama.txt (kind=file.gguf).
const llamaPath = path.join(dir, "llama.txt");
const llamaKinds = fs.existsSync(llamaPath)
  ? fs.readFileSync(llamaPath, "utf8").split("\n").filter(Boolean).map((l) => l.split("=")[0]).filter((k) => kinds.includes(k))
  : [];
const llama = Object.fromEntries(llamaKinds.map((k) => [k, pooled("llama", k)]));

const f = (x, d = 2) => x.toFixed(d);
const gib = (b) => (b / 2 ** 30).toFixed(2);
const best = (v) => Math.max(...v);
const lines = [];
const check = (ok, text) => lines.push(`- ${ok ? "PASS" : "FAIL"}: ${text}`);

lines.push(`Memory-read bandwidth (membw, ${bwRuns[0].threads} threads, ${bwRuns[0].buffer_mib} MiB, best pass): ` +
  bwRuns.map((r) => `${f(r.best_gb_per_s)} GB/s`).join(" before, ") + " after; floor uses the higher.");
lines.push(`Runs per engine and model: ${ours[kinds[0]].run_decode_tokens_per_s.length} (${ours[kinds[0]].rounds} rounds of alternating order); medians over all of them.`);
lines.push("");
lines.push("| model | engine | decode tok/s (median / best) | floor tok/s | of floor | prefill tok/s | TTFT ms | peak RSS GiB | RSS / weights |");
lines.push("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const kind of kinds) {
  const o = ours[kind], p = peer[kind];
  const floor = bw / o.weight_bytes_per_token;
  lines.push(`| ${kind} (${gib(o.weight_bytes)} GiB, ${gib(o.weight_bytes_per_token)} GiB/token) | medassist | ` +
    `${f(o.decode_tokens_per_s)} / ${f(best(o.run_decode_tokens_per_s))} | ${f(floor)} | ${f((100 * o.decode_tokens_per_s) / floor, 0)}% | ` +
    `${f(o.prefill_tokens_per_s, 1)} | ${f(o.ttft_ms, 0)} | ${gib(o.peak_rss_bytes)} | ${f(o.peak_rss_over_weights)} |`);
  lines.push(`| | transformers.js | ${f(p.decode_tokens_per_s)} / ${f(best(p.run_decode_tokens_per_s))} | ${f(floor)} | ` +
    `${f((100 * p.decode_tokens_per_s) / floor, 0)}% | ${f(p.prefill_tokens_per_s, 1)} | ${f(p.ttft_ms, 0)} | ` +
    `${gib(p.peak_rss_bytes)} | ${f(p.peak_rss_bytes / o.weight_bytes)} |`);
  const l = llama[kind];
  if (l) {
    lines.push(`| | llama.cpp (${path.basename(l.model)}, ${gib(l.weight_bytes)} GiB) | ${f(l.decode_tokens_per_s)} / ${f(best(l.run_decode_tokens_per_s))} | ${f(floor)} | ` +
      `${f((100 * l.decode_tokens_per_s) / floor, 0)}% | ${f(l.prefill_tokens_per_s, 1)} | ${f(l.ttft_ms, 0)} | ` +
      `${gib(l.peak_rss_bytes)} | ${f(l.peak_rss_bytes / l.weight_bytes)} |`);
  }
}
// Against llama.cpp, round by round: each round ran both engines back to back, so the ratio of a
// round's medians cancels most of the machine's drift; the min–max of those ratios is the spread.
const perRound = (who, kind, metric) =>
  roundFiles(who, kind).map(read).map((r) => metric === "decode" ? median(r.run_decode_tokens_per_s) : r.prompt_tokens / (median(r.run_ttft_ms) / 1000));
const ratios = {};
if (llamaKinds.length) {
  lines.push("");
  lines.push("medassist against llama.cpp: tok/s per round (median of the round's runs) and the ratio medassist ÷ llama.cpp, median of the rounds' ratios (min–max):");
  lines.push("");
  lines.push("| model | GGUF | medassist decode | llama.cpp decode | decode ratio | medassist prefill | llama.cpp prefill | prefill ratio |");
  lines.push("| --- | --- | --- | --- | --- | --- | --- | --- |");
  const list = (v, d) => v.map((x) => f(x, d)).join(", ");
  for (const kind of llamaKinds) {
    const cells = [];
    for (const metric of ["decode", "prefill"]) {
      const o = perRound("medassist", kind, metric), l = perRound("llama", kind, metric);
      const r = o.slice(0, l.length).map((x, i) => x / l[i]);
      ratios[`${kind} ${metric}`] = r;
      const d = metric === "decode" ? 2 : 1;
      cells.push(list(o, d), list(l, d), `**${f(median(r))}×** (${f(Math.min(...r))}–${f(Math.max(...r))})`);
    }
    lines.push(`| ${kind} | ${path.basename(llama[kind].model)} | ${cells.join(" | ")} |`);
  }
}
lines.push("");
const fp32Floor = bw / ours.fp32.weight_bytes_per_token;
check(ours.fp32.decode_tokens_per_s >= 0.6 * fp32Floor,
  `fp32 decode ${f(ours.fp32.decode_tokens_per_s)} tok/s is ${f((100 * ours.fp32.decode_tokens_per_s) / fp32Floor, 0)}% of the floor (≥ 60%)`);
for (const kind of kinds.filter((k) => k.startsWith("int4"))) {
  const speedup = ours[kind].decode_tokens_per_s / ours.fp32.decode_tokens_per_s;
  check(speedup >= 3, `${kind} decode is ${f(speedup)}× fp32 (≥ 3×)`);
}
for (const kind of kinds) {
  check(ours[kind].peak_rss_over_weights <= 1.3, `${kind} peak RSS ${f(ours[kind].peak_rss_over_weights)}× the weights (≤ 1.3×)`);
  const d = ours[kind].decode_tokens_per_s / peer[kind].decode_tokens_per_s;
  const t = peer[kind].ttft_ms / ours[kind].ttft_ms;
  check(d >= 1, `${kind} decode ${f(d)}× transformers.js (not slower)`);
  check(t >= 1, `${kind} time to first token ${f(t)}× faster than transformers.js (not slower)`);
}
for (const [what, r] of Object.entries(ratios)) {
  check(median(r) >= 1, `${what} ${f(median(r))}× llama.cpp (≥ 1.0×; rounds ${f(Math.min(...r))}–${f(Math.max(...r))})`);
}
console.log(lines.join("\n"));
