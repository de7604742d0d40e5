// Small helpers shared by the dashboard's sections: building DOM nodes,
// formatting durations, counts and times. No framework: each section
// re-renders its own table from the latest JSON.

/** el("td", {class: "num", title: "x"}, "text", child, ...) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") {
      node.addEventListener(k.slice(2), v);
    } else node.setAttribute(k, v === true ? "" : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

/** 0 -> "0s", 75 -> "1m 15s", 7300 -> "2h 1m", 200000 -> "2d 7h". */
export function duration(seconds) {
  if (seconds === undefined || seconds === null || !isFinite(seconds)) {
    return "–";
  }
  let s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

/** A count with thin grouping: 12345 -> "12 345". */
export function count(n) {
  if (n === undefined || n === null) return "–";
  return Number(n).toLocaleString("en-US").replace(/,/g, "\u2009");
}

/** Milliseconds, compact: 3 -> "3 ms", 1500 -> "1.5 s". */
export function millis(ms) {
  if (ms === undefined || ms === null || ms < 0) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Unix seconds -> "2026-11-21 08:02:11 UTC". */
export function utc(unix) {
  if (!unix) return "";
  return new Date(unix * 1000).toISOString().replace("T", " ")
      .replace(/\.\d+Z$/, " UTC");
}

/** Unix seconds in the future -> "in 59m 10s"; 0 -> "never". */
export function expiresIn(unix, nowUnix) {
  if (!unix) return "never";
  const left = unix - nowUnix;
  return left <= 0 ? "expired" : `in ${duration(left)}`;
}

export function nowUnix() {
  return Math.floor(Date.now() / 1000);
}

/**
 * A sparkline as inline SVG: `values` (oldest first) scaled to the box,
 * with a text alternative for screen readers.
 */
export function sparkline(values, label, width = 120, height = 22) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("role", "img");
  svg.setAttribute("class", "spark");
  const vals = Array.isArray(values) ? values : [];
  const total = vals.reduce((a, b) => a + b, 0);
  const peak = Math.max(0, ...vals);
  svg.setAttribute("aria-label",
      `${label}: ${total} in the last ${vals.length} minutes, peak ${peak}/min`);
  if (vals.length > 1) {
    const max = Math.max(1, peak);
    const step = width / (vals.length - 1);
    const pts = vals.map((v, i) =>
        `${(i * step).toFixed(1)},${(height - 1 - (v / max) * (height - 3)).toFixed(1)}`);
    const area = document.createElementNS(ns, "polygon");
    area.setAttribute("points",
        `0,${height} ${pts.join(" ")} ${width},${height}`);
    area.setAttribute("class", "spark-area");
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.join(" "));
    line.setAttribute("class", "spark-line");
    svg.append(area, line);
  }
  return svg;
}
