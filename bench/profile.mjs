// Where a decode step's time goes: reads an ONNX Runtime profile written by
// `medassist bench --ort-profile PREFIX` and sums the kernel time of the decode runs per operator type.
// Decode runs are the session runs shorter than twice the median run (the prefills are far longer).
//
//   medassist bench --model DIR --threads 2 --new-tokens 16 --runs 1 --ort-profile out/bench/prof/int8
//   node bench/profile.mjs out/bench/prof/int8_<time>.json
import fs from "node:fs";

const file = process.argv[2];
if (!file) {
  console.error("usage: node bench/profile.mjs PROFILE.json");
  process.exit(2);
}
const events = JSON.parse(fs.readFileSync(file, "utf8"));
const runs = events.filter((e) => e.cat === "Session" && e.name === "model_run").sort((a, b) => a.ts - b.ts);
const durs = runs.map((r) => r.dur).sort((a, b) => a - b);
const med = durs[Math.floor(durs.length / 2)];
const decode = runs.filter((r) => r.dur < 2 * med);
const nodes = events.filter((e) => e.cat === "Node" && e.name.endsWith("_kernel_time")).sort((a, b) => a.ts - b.ts);
const byOp = new Map();
let i = 0;
for (const r of decode) {
  while (i < nodes.length && nodes[i].ts < r.ts) i++;
  for (let j = i; j < nodes.length && nodes[j].ts <= r.ts + r.dur; j++) {
    const op = nodes[j].args?.op_name ?? "?";
    const s = byOp.get(op) ?? { us: 0, n: 0 };
    s.us += nodes[j].dur;
    s.n++;
    byOp.set(op, s);
  }
}
const n = decode.length;
const kernel = [...byOp.values()].reduce((a, s) => a + s.us, 0);
const run = decode.reduce((a, r) => a + r.dur, 0);
console.log(`${n} decode runs: ${(run / n / 1000).toFixed(1)} ms per run, ${(kernel / n / 1000).toFixed(1)} ms of kernels`);
console.log("| operator | ms per step | share of kernel time | nodes per step |");
console.log("| --- | --- | --- | --- |");
for (const [op, s] of [...byOp.entries()].sort((a, b) => b[1].us - a[1].us).slice(0, 15)) {
  console.log(`| ${op} | ${(s.us / n / 1000).toFixed(2)} | ${((100 * s.us) / kernel).toFixed(1)}% | ${Math.round(s.n / n)} |`);
}
