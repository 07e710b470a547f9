// Small inline-SVG plots for the inspector: a line chart and a bar chart. No chart library.
"use strict";
const Plot = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2f5bd3", "#f79009", "#12b76a", "#b42318", "#7a5af8", "#0e9384"];

  function el(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function svg(width, height, label) {
    return el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
  }

  // series: [{name, points: [[x, y], ...]}]; x is a unix time, y a number.
  function lines(series, { width = 640, height = 220, label = "", yFormat = (v) => v } = {}) {
    const s = svg(width, height, label);
    const pad = { l: 56, r: 12, t: 12, b: 28 };
    const all = series.flatMap((ser) => ser.points);
    if (!all.length) {
      s.append(el("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "no turns yet"));
      return s;
    }
    const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs) || x0 + 1, y1 = Math.max(...ys) * 1.1 || 1;
    const X = (x) => pad.l + ((x - x0) / (x1 - x0 || 1)) * (width - pad.l - pad.r);
    const Y = (y) => height - pad.b - (y / y1) * (height - pad.t - pad.b);
    for (let i = 0; i <= 4; i++) {
      const v = (y1 * i) / 4;
      s.append(el("line", { x1: pad.l, x2: width - pad.r, y1: Y(v), y2: Y(v), stroke: "#eee" }));
      s.append(el("text", { x: pad.l - 4, y: Y(v) + 4, "text-anchor": "end" }, yFormat(v)));
    }
    for (const t of [x0, x1]) {
      s.append(el("text", { x: X(t), y: height - 8, "text-anchor": "middle" },
                  new Date(t * 1000).toLocaleTimeString()));
    }
    series.forEach((ser, i) => {
      const color = COLORS[i % COLORS.length];
      const d = ser.points.map((p, j) => `${j ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
      s.append(el("path", { d, fill: "none", stroke: color, "stroke-width": 2 }));
      for (const p of ser.points) s.append(el("circle", { cx: X(p[0]), cy: Y(p[1]), r: 2.5, fill: color }));
      s.append(el("text", { x: pad.l + 8 + i * 130, y: pad.t + 10, fill: color, style: `fill:${color}` }, ser.name));
    });
    return s;
  }

  // bars: [{label, value}]
  function bars(items, { width = 640, height = 180, label = "" } = {}) {
    const s = svg(width, height, label);
    const pad = { l: 40, r: 12, t: 12, b: 28 };
    const max = Math.max(1, ...items.map((b) => b.value));
    const w = (width - pad.l - pad.r) / Math.max(items.length, 1);
    items.forEach((b, i) => {
      const h = (b.value / max) * (height - pad.t - pad.b);
      const x = pad.l + i * w + w * 0.15;
      s.append(el("rect", { x, y: height - pad.b - h, width: w * 0.7, height: h, fill: COLORS[0], rx: 2 }));
      s.append(el("text", { x: x + w * 0.35, y: height - pad.b - h - 3, "text-anchor": "middle" }, String(b.value)));
      s.append(el("text", { x: x + w * 0.35, y: height - 8, "text-anchor": "middle" }, b.label));
    });
    return s;
  }

  // marks: [{x: turn, label, kind}] on one axis of turns 0..max.
  function timeline(marks, maxTurn, { width = 520, height = 70, onClick } = {}) {
    const s = svg(width, height, "checkpoints and versions by turn");
    const pad = 20, top = 30;
    const X = (t) => pad + (t / Math.max(maxTurn, 1)) * (width - 2 * pad);
    s.append(el("line", { x1: pad, x2: width - pad, y1: top, y2: top, stroke: "#98a2b3", "stroke-width": 2 }));
    s.append(el("text", { x: pad, y: height - 6 }, "turn 0"));
    s.append(el("text", { x: width - pad, y: height - 6, "text-anchor": "end" }, `turn ${maxTurn} (now)`));
    marks.forEach((m) => {
      const shape = m.kind === "version"
        ? el("rect", { x: X(m.x) - 6, y: top - 6, width: 12, height: 12, fill: COLORS[1] })
        : el("circle", { cx: X(m.x), cy: top, r: 6, fill: COLORS[0] });
      shape.append(el("title", {}, m.label));
      if (onClick) { shape.style.cursor = "pointer"; shape.addEventListener("click", () => onClick(m)); }
      s.append(shape);
    });
    return s;
  }

  // tasks: {name: {status, depends_on: [...]}}; columns by dependency depth, edges drawn left to right.
  const STATUS = { done: "#12b76a", approved: "#12b76a", pending_approval: "#f79009", failed: "#b42318",
                   rejected: "#b42318" };
  function graph(tasks, { width = 520 } = {}) {
    const names = Object.keys(tasks);
    const depth = {};
    const depthOf = (n, seen = new Set()) => {
      if (depth[n] !== undefined) return depth[n];
      if (seen.has(n)) return 0;
      seen.add(n);
      const deps = (tasks[n]?.depends_on || []).filter((d) => d in tasks);
      return (depth[n] = deps.length ? 1 + Math.max(...deps.map((d) => depthOf(d, seen))) : 0);
    };
    names.forEach((n) => depthOf(n));
    const cols = Math.max(0, ...Object.values(depth)) + 1;
    const rows = {};
    const pos = {};
    for (const n of names) { const c = depth[n]; rows[c] = (rows[c] || 0) + 1; pos[n] = [c, rows[c] - 1]; }
    const nodeW = 110, nodeH = 26, gapY = 14;
    const height = Math.max(...Object.values(rows), 1) * (nodeH + gapY) + gapY;
    const colW = cols > 1 ? (width - nodeW - 20) / (cols - 1) : 0;
    const XY = (n) => [10 + pos[n][0] * colW, gapY + pos[n][1] * (nodeH + gapY)];
    const s = svg(width, height, "workflow task graph");
    for (const n of names) for (const d of tasks[n].depends_on || []) {
      if (!(d in tasks)) continue;
      const [x1, y1] = XY(d), [x2, y2] = XY(n);
      s.append(el("line", { x1: x1 + nodeW, y1: y1 + nodeH / 2, x2, y2: y2 + nodeH / 2, stroke: "#98a2b3" }));
    }
    for (const n of names) {
      const [x, y] = XY(n);
      const g = el("g", { "data-task": n });
      g.append(el("rect", { x, y, width: nodeW, height: nodeH, rx: 5, fill: "#fff",
                            stroke: STATUS[tasks[n].status] || "#98a2b3", "stroke-width": 2 }));
      g.append(el("text", { x: x + nodeW / 2, y: y + nodeH / 2 + 4, "text-anchor": "middle" }, n.slice(0, 16)));
      g.append(el("title", {}, `${n}: ${tasks[n].status}`));
      s.append(g);
    }
    return s;
  }

  return { lines, bars, timeline, graph };
})();
