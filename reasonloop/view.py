"""`reasonloop view RUN`: one self-contained HTML page of a run, readable offline.

    reasonloop view runs/grpo            # writes runs/grpo/view.html; open it in any browser

The page holds, as embedded JSON rendered by a small hand-written script (no CDN, no
libraries, nothing fetched):
- metric curves (an SVG line per metric of metrics.jsonl, filterable by name);
- the samples of each step (`rollouts/step-*.jsonl` of grpo, `samples/iter_*.jsonl` of
  selftrain) as a table with filters: correct / wrong / flagged (the step's reward_hacking alarm
  fired, a wrong answer was paid as much as a right one, or a right answer came through a wrong
  step), and a
  text search; a row opens the prompt and the completion with each step coloured by its verdict
  (`step_verdicts`) or PRM score (`step_scores`), rewards, and turns / tool calls when there are;
- search trees of beam / MCTS records (`records.jsonl`, `cells/*.jsonl`: `meta["tree"]`),
  nodes coloured by score;
- the resolved config.
`view.html?step=5&show=wrong` opens a step with a filter set (show: all, correct, wrong, flagged).

Hand-written because no maintained library renders these artifacts offline in one file:
TensorBoard / W&B need a server or an account, and a plotting library would either load from a
CDN or inline hundreds of kilobytes for a few line charts.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from reasonloop.store.atomic import atomic_write_text
from reasonloop.store.jsonl import iter_jsonl

META_KEYS = ("step_verdicts", "step_scores", "steps_valid", "turns", "tool_calls", "hint_prompt")
"""what of `Sample.meta` the page shows (the rest stays in the JSONL files)"""


@dataclass
class ViewConfig:
    run: str = ""
    """the run directory"""
    output: str = ""
    """where to write the page (default: <run>/view.html)"""
    samples_per_step: int = 0
    """keep at most this many samples of each step on the page (0: all)"""

    def __post_init__(self):
        if not self.run:
            raise ValueError("view needs a run directory: reasonloop view RUN")
        if self.samples_per_step < 0:
            raise ValueError(f"samples_per_step must be >= 0, got {self.samples_per_step}")


def _rows(path: Path) -> list[dict]:
    return [row for _, row in iter_jsonl(path, skip_torn_tail=True)]


def sample_view(row: dict, alarm: bool, bar: float) -> dict:
    """The fields of one sample row the page shows, with its flags (why it may be a hack).

    A wrong answer is flagged when its total reward reaches `bar`: the lowest total of a correct
    sample of the same step (0.5 when none is correct), i.e. shaping made it pay like a right one.
    """
    rewards = row.get("rewards") or {}
    meta = row.get("meta") or {}
    correct = rewards.get("correct") == 1.0
    total = rewards.get("total")
    flags = []
    if alarm:
        flags.append("reward_hacking alarm at this step")
    if not correct and total is not None and total >= bar:
        flags.append("rewarded like a right answer while wrong")
    if correct and meta.get("steps_valid") is False:
        flags.append("right answer through a wrong step")
    return {"problem_id": row.get("problem_id", ""), "prompt": row.get("prompt", ""), "text": row.get("text", ""),
            "rewards": rewards, "correct": correct, "finish": row.get("finish_reason", ""),
            "meta": {k: meta[k] for k in META_KEYS if k in meta}, "flags": flags}


def collect(run: Path, samples_per_step: int = 0) -> dict:
    """Everything the page shows, read from the run directory."""
    metrics = _finite(_rows(run / "metrics.jsonl")) if (run / "metrics.jsonl").exists() else []
    alarms = {r.get("step") for r in metrics if r.get("health/reward_hacking")}
    steps = []
    for path in sorted((run / "rollouts").glob("step-*.jsonl")):
        number = int(path.stem.split("-")[1])
        steps.append((f"step {number}", number, path))
    for path in sorted((run / "samples").glob("iter_*.jsonl")):
        if re.fullmatch(r"iter_\d+", path.stem):  # selftrain's sampled iteration (not its _train subset)
            steps.append((f"iteration {int(path.stem[5:])}", None, path))
    step_views = []
    for label, number, path in steps:
        rows = _rows(path)
        right = [(r.get("rewards") or {}).get("total") for r in rows if (r.get("rewards") or {}).get("correct") == 1.0]
        bar = min((t for t in right if t is not None), default=0.5)
        rows = rows[:samples_per_step] if samples_per_step else rows
        step_views.append({"label": label, "samples": [sample_view(r, number in alarms, bar) for r in rows]})
    trees = []
    for path in [run / "records.jsonl", *sorted((run / "cells").glob("*.jsonl"))]:
        if path.exists():
            for r in _rows(path):
                if isinstance((r.get("meta") or {}).get("tree"), dict):
                    trees.append({"source": path.name, "problem_id": r.get("problem_id"), "strategy": r.get("strategy"),
                                  "correct": r.get("correct"), "tree": r["meta"]["tree"]})
    config = (run / "config.yaml").read_text() if (run / "config.yaml").exists() else ""
    return {"run": str(run), "config": config, "metrics": metrics, "steps": step_views, "trees": trees}


def render(data: dict) -> str:
    """The page: data as JSON inside a <script> (with `</` escaped so no string can close the tag)."""
    payload = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str).replace("</", "<\\/")
    return (PAGE.replace("__TITLE__", _escape(Path(data["run"]).name or data["run"]))
            .replace("__DATA__", payload))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _finite(metrics: list[dict]) -> list[dict]:
    """NaN / inf are not JSON: shown as missing points."""
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
            for row in metrics]


def main(cfg: ViewConfig) -> Path:
    import sys

    from reasonloop.store.jsonl import RecordError
    from reasonloop.utils import console

    run = Path(cfg.run)
    if not run.is_dir():
        print(f"reasonloop view: {run} is not a run directory", file=sys.stderr)
        raise SystemExit(2)
    try:
        data = collect(run, cfg.samples_per_step)
    except RecordError as e:
        print(f"reasonloop view: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    out = Path(cfg.output) if cfg.output else run / "view.html"
    atomic_write_text(out, render(data))
    n = sum(len(s["samples"]) for s in data["steps"])
    console.print(f"view: {out} ({len(data['metrics'])} metric rows, {len(data['steps'])} steps, {n} samples, "
                  f"{len(data['trees'])} search trees)", highlight=False)
    return out


PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reasonloop: __TITLE__</title>
<script>
// error sink first, so a failure anywhere below is visible (and testable: body[data-errors])
window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push(String(e.message || e)); showErrors(); });
function showErrors() {
  var box = document.getElementById("errors");
  if (!box) return;
  box.textContent = window.__errors.join("\n");
  box.style.display = window.__errors.length ? "block" : "none";
  document.body.setAttribute("data-errors", String(window.__errors.length));
}
</script>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5em 2em; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 17px; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
#errors { display: none; background: #fdd; color: #900; padding: .5em; white-space: pre-wrap; }
.charts { display: flex; flex-wrap: wrap; gap: 10px; }
.chart { border: 1px solid #e3e3e3; padding: 4px; } .chart div { font-size: 12px; color: #444; }
table { border-collapse: collapse; width: 100%; } th, td { border-bottom: 1px solid #eee; padding: 3px 6px; text-align: left; }
tr.sample { cursor: pointer; } tr.sample:hover { background: #f4f7ff; }
td.ok { color: #16692c; font-weight: 600; } td.bad { color: #a11; font-weight: 600; } td.flag { color: #a60; }
.detail td { background: #fafafa; } .prompt { color: #555; white-space: pre-wrap; font-family: monospace; }
.step { display: block; white-space: pre-wrap; font-family: monospace; padding: 1px 4px; margin: 1px 0; }
.good { background: #c8f0c8; } .wrong { background: #f6c4c4; } .unk { background: #eee; }
.controls { margin: .6em 0; display: flex; gap: 1em; align-items: center; flex-wrap: wrap; }
ul.tree { list-style: none; padding-left: 1.2em; border-left: 1px dotted #bbb; margin: 0; }
.node { font-family: monospace; white-space: pre; padding: 0 3px; } pre.config { background: #f6f6f6; padding: .6em; }
</style></head>
<body data-errors="0">
<div id="errors"></div>
<h1>reasonloop run: __TITLE__</h1>
<nav><a href="#curves">curves</a> · <a href="#samples">samples</a> · <a href="#trees">search trees</a> · <a href="#config">config</a></nav>
<h2 id="curves">Metric curves</h2>
<div class="controls">filter <input id="metric-filter" placeholder="e.g. reward/">
  <label><input type="checkbox" id="all-metrics"> all metrics (<span id="metric-count"></span>)</label></div>
<div class="charts" id="charts"></div>
<h2 id="samples">Samples</h2>
<div class="controls">
  <label>step <select id="step"></select></label>
  <label><input type="radio" name="show" value="all" checked> all</label>
  <label><input type="radio" name="show" value="correct"> correct</label>
  <label><input type="radio" name="show" value="wrong"> wrong</label>
  <label><input type="radio" name="show" value="flagged"> hacked / alarm</label>
  <input id="search" placeholder="search prompt or completion"> <span id="count"></span>
</div>
<table id="sample-table"><thead><tr><th>#</th><th>problem</th><th>verdict</th><th>reward</th><th>rewards</th>
<th>steps ok</th><th>finish</th><th>flags</th></tr></thead><tbody></tbody></table>
<h2 id="trees">Search trees</h2><div id="tree-list"></div>
<h2 id="config">Config</h2><pre class="config" id="config-text"></pre>
<script type="application/json" id="data">__DATA__</script>
<script>
(function () {
  var D = JSON.parse(document.getElementById("data").textContent);
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in (attrs || {})) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmt(v) {
    if (typeof v !== "number") return String(v);
    if (v !== 0 && Math.abs(v) < 0.001) return v.toExponential(2);
    return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3);
  }
  // score in [0, 1] -> red .. green
  function heat(s) { var h = Math.max(0, Math.min(1, s)) * 120; return "hsl(" + h + ",70%,82%)"; }

  // --- metric curves
  var keys = [];
  D.metrics.forEach(function (r) { for (var k in r) if (typeof r[k] === "number" && k !== "step" && k !== "time"
    && keys.indexOf(k) < 0) keys.push(k); });
  function chart(key) {
    var pts = D.metrics.map(function (r, i) { return [r.step !== undefined ? r.step : (r.iteration !== undefined ? r.iteration : i), r[key]]; })
      .filter(function (p) { return typeof p[1] === "number"; });
    var W = 230, H = 95, P = 26, box = el("div", {"class": "chart", "data-metric": key});
    box.appendChild(el("div", {}, key + (pts.length ? "  (last " + fmt(pts[pts.length - 1][1]) + ")" : "")));
    var xs = pts.map(function (p) { return p[0]; }), ys = pts.map(function (p) { return p[1]; });
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs), y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    if (x1 === x0) x1 = x0 + 1; if (y1 === y0) { y1 += 0.5; y0 -= 0.5; }
    var ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg");
    svg.setAttribute("width", W); svg.setAttribute("height", H);
    function X(v) { return P + (v - x0) / (x1 - x0) * (W - P - 6); } function Y(v) { return H - 16 - (v - y0) / (y1 - y0) * (H - 24); }
    var line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.map(function (p) { return X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1); }).join(" "));
    line.setAttribute("fill", "none"); line.setAttribute("stroke", "#2a62c9"); line.setAttribute("stroke-width", "1.5");
    svg.appendChild(line);
    [[y0, Y(y0)], [y1, Y(y1)]].forEach(function (t) { var tx = document.createElementNS(ns, "text");
      tx.setAttribute("x", 1); tx.setAttribute("y", t[1] + 4); tx.setAttribute("font-size", "9"); tx.textContent = fmt(t[0]); svg.appendChild(tx); });
    var tx = document.createElementNS(ns, "text"); tx.setAttribute("x", W - 40); tx.setAttribute("y", H - 3);
    tx.setAttribute("font-size", "9"); tx.textContent = "step " + x1; svg.appendChild(tx);
    box.appendChild(svg);
    return box;
  }
  // a run logs dozens of metrics: the headline ones first, all of them on request or by filter
  var HEADLINE = ["reward/mean", "reward/correct", "eval/greedy_accuracy", "loss", "policy/kl", "policy/entropy",
                  "len/mean", "groups/zero_variance_frac", "process/steps_valid", "eval/accuracy"];
  function drawCharts() {
    var f = document.getElementById("metric-filter").value, host = document.getElementById("charts");
    var all = document.getElementById("all-metrics").checked, head = keys.filter(function (k) { return HEADLINE.indexOf(k) >= 0; });
    var chosen = f ? keys.filter(function (k) { return k.indexOf(f) >= 0; }) : (all || !head.length ? keys : head);
    host.innerHTML = "";
    chosen.forEach(function (k) { host.appendChild(chart(k)); });
    document.getElementById("metric-count").textContent = String(keys.length);
  }
  document.getElementById("metric-filter").addEventListener("input", drawCharts);
  document.getElementById("all-metrics").addEventListener("change", drawCharts);
  drawCharts();

  // --- samples
  var stepSel = document.getElementById("step");
  D.steps.forEach(function (s, i) { stepSel.appendChild(el("option", {value: i}, s.label + " (" + s.samples.length + ")")); });
  if (D.steps.length) stepSel.value = D.steps.length - 1;
  // links can choose what opens: view.html?step=5&show=wrong
  var query = {};
  location.search.slice(1).split("&").forEach(function (kv) { var p = kv.split("="); if (p[0]) query[p[0]] = decodeURIComponent(p[1] || ""); });
  D.steps.forEach(function (s, i) { if (query.step && s.label.split(" ")[1] === query.step) stepSel.value = i; });
  if (query.show) { var radio = document.querySelector("input[name=show][value='" + query.show + "']"); if (radio) radio.checked = true; }
  function show() { return document.querySelector("input[name=show]:checked").value; }
  function keep(s) {
    var m = show(), q = document.getElementById("search").value.toLowerCase();
    if (m === "correct" && !s.correct) return false;
    if (m === "wrong" && s.correct) return false;
    if (m === "flagged" && !s.flags.length) return false;
    return !q || (s.prompt + "\n" + s.text).toLowerCase().indexOf(q) >= 0;
  }
  function completion(s) {
    var box = el("div"), lines = s.text.split("\n").filter(function (l) { return l.trim(); });
    var verdicts = s.meta.step_verdicts, scores = s.meta.step_scores;
    lines.forEach(function (line, i) {
      var span = el("span", {"class": "step"}, line);
      if (verdicts && i < verdicts.length) span.className += verdicts[i] ? " good" : " wrong";
      else if (scores && i < scores.length) { span.style.background = heat(scores[i]); span.title = "PRM " + fmt(scores[i]); }
      else span.className += " unk";
      if (scores && i < scores.length) span.title = "PRM score " + fmt(scores[i]);
      box.appendChild(span);
    });
    return box;
  }
  function detail(s) {
    var td = el("td", {colspan: 8});
    td.appendChild(el("div", {"class": "prompt"}, s.prompt));
    td.appendChild(completion(s));
    var turns = s.meta.turns || s.meta.tool_calls;
    if (turns) { td.appendChild(el("b", {}, "turns / tool calls")); td.appendChild(el("pre", {}, JSON.stringify(turns, null, 1))); }
    if (s.meta.hint_prompt) td.appendChild(el("div", {"class": "prompt"}, "sampled with hint: " + s.meta.hint_prompt));
    if (s.flags.length) td.appendChild(el("div", {}, "flags: " + s.flags.join("; ")));
    var tr = el("tr", {"class": "detail"}); tr.appendChild(td);
    return tr;
  }
  function drawTable() {
    var body = document.querySelector("#sample-table tbody"); body.innerHTML = "";
    var step = D.steps[+stepSel.value], shown = 0;
    (step ? step.samples : []).forEach(function (s, i) {
      if (!keep(s)) return;
      shown++;
      var tr = el("tr", {"class": "sample"}), v = s.meta.step_verdicts;
      var steps = v ? v.filter(Boolean).length + "/" + v.length : (s.meta.step_scores ? "PRM min " + fmt(Math.min.apply(null, s.meta.step_scores)) : "");
      var others = Object.keys(s.rewards).filter(function (k) { return k !== "total" && k !== "correct" && s.rewards[k] !== null; })
        .map(function (k) { return k + " " + fmt(s.rewards[k]); }).join(", ");
      [[String(i)], [s.problem_id], [s.correct ? "correct" : "wrong", s.correct ? "ok" : "bad"],
       [s.rewards.total === undefined ? "" : fmt(s.rewards.total)], [others], [steps], [s.finish],
       [s.flags.length ? "⚑ " + s.flags.length : "", "flag"]].forEach(function (c) {
        var td = el("td", c[1] ? {"class": c[1]} : {}, c[0]); tr.appendChild(td); });
      var open = null;
      tr.addEventListener("click", function () { if (open) { open.remove(); open = null; } else { open = detail(s); tr.after(open); } });
      body.appendChild(tr);
      if (shown === 1) { open = detail(s); body.appendChild(open); }  // the first one open: the colours show at once
    });
    document.getElementById("count").textContent = shown + " shown";
    document.body.setAttribute("data-rows", String(shown));
    document.body.setAttribute("data-step", step ? step.label : "");
  }
  [stepSel, document.getElementById("search")].forEach(function (e) { e.addEventListener("input", drawTable); });
  document.querySelectorAll("input[name=show]").forEach(function (e) { e.addEventListener("change", drawTable); });
  drawTable();

  // --- search trees
  function node(n) {
    var li = el("li"), label = (n.step || "(root)").replace(/\n+$/, "");
    var info = [];
    if (typeof n.score === "number") info.push("score " + fmt(n.score));
    if (n.visits !== undefined) info.push("N " + n.visits);
    if (n.finished) info.push("finished"); if (n.kept) info.push("kept"); if (n.chosen) info.push("chosen");
    var span = el("span", {"class": "node"}, label + (info.length ? "   [" + info.join(", ") + "]" : ""));
    if (typeof n.score === "number") span.style.background = heat(n.score);
    if (n.chosen) span.style.outline = "2px solid #2a62c9";
    li.appendChild(span);
    if (n.children && n.children.length) { var ul = el("ul", {"class": "tree"}); n.children.forEach(function (c) { ul.appendChild(node(c)); }); li.appendChild(ul); }
    return li;
  }
  var trees = document.getElementById("tree-list");
  if (!D.trees.length) trees.appendChild(el("p", {}, "no search trees in this run (beam / MCTS records keep one per problem)"));
  D.trees.forEach(function (t, i) {
    var d = el("details");
    if (i === 0) d.open = true;  // the first tree shown unfolded
    d.appendChild(el("summary", {}, t.source + ": " + t.problem_id + " (" + t.strategy + ", " + (t.correct ? "correct" : "wrong") + ")"));
    var ul = el("ul", {"class": "tree"}); ul.appendChild(node(t.tree)); d.appendChild(ul); trees.appendChild(d);
  });
  document.getElementById("config-text").textContent = D.config || "(no config.yaml)";
  if (location.hash) { var target = document.getElementById(location.hash.slice(1)); if (target) target.scrollIntoView(); }
  document.body.setAttribute("data-rendered", "1");
  showErrors();
})();
</script>
</body></html>
"""
