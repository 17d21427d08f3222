// Summarises one bench/ab.sh folder: per variant, decode and prefill tok/s of each round, their
// medians, and the per-round ratio to the first variant (min, median, max over the rounds).
//
//   node bench/ab-summary.mjs out/bench/ab/<stamp>
import fs from "node:fs";
import path from "node:path";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node bench/ab-summary.mjs AB_DIR");
  process.exit(2);
}
const names = fs.readFileSync(path.join(dir, "variants.txt"), "utf8").split("\n").filter(Boolean).map((l) => l.split("=")[0]);
const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
// rounds[name] = [{decode, prefill}, ...] in round order; a round that failed is left out.
const rounds = {};
for (const name of names) {
  rounds[name] = [];
  for (let r = 1; ; r++) {
    const f = path.join(dir, `${name}-r${r}.json`);
    if (!fs.existsSync(f)) break;
    try {
      const j = JSON.parse(fs.readFileSync(f, "utf8"));
      rounds[name][r - 1] = { decode: j.decode_tokens_per_s, prefill: j.prefill_tokens_per_s };
    } catch {
      rounds[name][r - 1] = undefined;
    }
  }
}
const f = (x, d = 2) => x.toFixed(d);
const base = names[0];
const lines = [fs.readFileSync(path.join(dir, "machine.txt"), "utf8").trim().replaceAll("\n", ", ")];
for (const metric of ["decode", "prefill"]) {
  lines.push("", `${metric} tok/s per round, median; ratio to ${base} per round (min / median / max)`);
  for (const name of names) {
    const v = rounds[name].map((x) => x?.[metric]);
    const ok = v.filter((x) => x !== undefined);
    let ratio = "";
    if (name !== base) {
      const r = v.map((x, i) => (x !== undefined && rounds[base][i] ? x / rounds[base][i][metric] : undefined)).filter((x) => x !== undefined);
      if (r.length) ratio = `  ×${f(Math.min(...r))} / ×${f(median(r))} / ×${f(Math.max(...r))}`;
    }
    lines.push(`${name.padEnd(16)} ${v.map((x) => (x === undefined ? "-" : f(x))).join(" ")}  | median ${ok.length ? f(median(ok)) : "-"}${ratio}`);
  }
}
console.log(lines.join("\n"));
