// Rates over the last hour (GET history / the `history` event), drawn by
// uPlot (vendor/uplot): the fleet's sum first, then one chart per node,
// six series each, messages per minute.

import uPlot from "./vendor/uplot/uPlot.esm.js";
import {count, el, fill} from "./util.js";

export const SERIES = [
  {key: "received", label: "received", color: "#2563eb"},
  {key: "delivered", label: "delivered", color: "#16a34a"},
  {key: "deferred", label: "deferred", color: "#d97706"},
  {key: "bounced", label: "bounced", color: "#dc2626"},
  {key: "rejected_policy", label: "rejected (policy)", color: "#7c3aed"},
  {key: "rejected_rate", label: "rejected (rate limit)", color: "#db2777"},
];

const HEIGHT_FLEET = 190;
const HEIGHT_NODE = 150;

export class Charts {
  constructor() {
    this.box = document.getElementById("charts");
    this.plots = new Map();  // name -> {plot, figure}
    this.names = "";
    this.last = null;
    let timer = null;
    window.addEventListener("resize", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.resize(), 150);
    });
  }

  update(data) {
    this.last = data;
    const series = data.series || {};
    const nodes = Object.keys(series).filter((n) => n !== "fleet")
        .sort((a, b) => a.localeCompare(b, "en", {numeric: true}));
    const names = ["fleet", ...nodes];
    if (names.join(" ") !== this.names) this.build(names);
    for (const name of names) this.setData(name, data.minutes || [],
        series[name] || {});
  }

  build(names) {
    for (const {plot} of this.plots.values()) plot.destroy();
    this.plots.clear();
    this.names = names.join(" ");
    const legend = el("ul", {class: "legend", "aria-label": "Series"},
        SERIES.map((s) => el("li", {},
            el("span", {class: "swatch", style: `background:${s.color}`}),
            s.label)));
    const grid = el("div", {class: "chart-grid"});
    fill(this.box, legend, grid);
    for (const name of names) {
      const title = name === "fleet" ? "Fleet (all nodes)" : name;
      const figure = el("figure", {class: `chart ${name === "fleet" ? "fleet" : ""}`,
        role: "img", dataset: {series: name}},
      el("figcaption", {}, title));
      grid.append(figure);
      const height = name === "fleet" ? HEIGHT_FLEET : HEIGHT_NODE;
      const plot = new uPlot({
        width: this.widthOf(figure),
        height,
        legend: {show: false},
        cursor: {drag: {x: false, y: false}},
        scales: {y: {range: (u, min, max) => [0, Math.max(4, max * 1.1)]}},
        axes: [
          {stroke: "#475569", grid: {stroke: "#e2e8f0"}, ticks: {show: false},
            values: (u, ticks) => ticks.map((t) =>
              new Date(t * 1000).toISOString().slice(11, 16))},
          {stroke: "#475569", grid: {stroke: "#e2e8f0"}, ticks: {show: false},
            size: 42},
        ],
        series: [{}, ...SERIES.map((s) => ({
          label: s.label, stroke: s.color, width: 1.5,
          points: {show: false},
        }))],
      }, [[], ...SERIES.map(() => [])], figure);
      this.plots.set(name, {plot, figure});
    }
  }

  widthOf(figure) {
    return Math.max(260, Math.floor(figure.clientWidth || 400) - 2);
  }

  setData(name, minutes, s) {
    const entry = this.plots.get(name);
    if (!entry) return;
    const cols = SERIES.map((d) => {
      const v = s[d.key] || [];
      return minutes.map((_, i) => v[i] ?? 0);
    });
    entry.plot.setData([minutes, ...cols]);
    const totals = SERIES.map((d, i) =>
      `${d.label} ${count(cols[i].reduce((a, b) => a + b, 0))}`);
    entry.figure.setAttribute("aria-label",
        `${name === "fleet" ? "Fleet" : name}, last hour: ${totals.join(", ")}`);
    entry.figure.dataset.total = String(cols[0].reduce((a, b) => a + b, 0));
  }

  resize() {
    for (const [name, {plot, figure}] of this.plots) {
      plot.setSize({width: this.widthOf(figure),
        height: name === "fleet" ? HEIGHT_FLEET : HEIGHT_NODE});
    }
  }
}
