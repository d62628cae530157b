// The dashboard's plots, drawn with uPlot (loaded as the global `uPlot`): each metric's canary
// and baseline over the rollout on its target / acceptable / critical bands with each
// measurement's verdict, and the canary weight over time.

const VERDICT_COLOURS = {
  Pass: "#1f8a4c", Marginal: "#b7791f", Fail: "#c53030", Critical: "#822727",
  NoData: "#718096", NaN: "#718096", Error: "#6b46c1", InsufficientTraffic: "#a0aec0",
};
const BAND_COLOURS = ["rgba(72,187,120,.12)", "rgba(236,201,75,.16)", "rgba(237,137,54,.16)", "rgba(229,62,62,.16)"];
const WIDTH = 540;

const seconds = (at) => Math.floor(new Date(at).getTime() / 1000);

// Fills the bands behind the series: better than target, to acceptable, to critical, beyond.
function bandsHook(bands) {
  return (u) => {
    const { ctx } = u;
    const { left, top, width, height } = u.bbox;
    const y = (v) => Math.min(Math.max(u.valToPos(v, "y", true), top), top + height);
    const far = bands.higherIsBetter ? -Infinity : Infinity;
    const near = bands.higherIsBetter ? Infinity : -Infinity;
    const edges = [near, bands.target, bands.acceptable, bands.critical, far]
      .map((v) => (Number.isFinite(v) ? y(v) : (v > 0 ? top : top + height)));
    ctx.save();
    for (let i = 0; i < 4; i++) {
      const [a, b] = [edges[i], edges[i + 1]];
      ctx.fillStyle = BAND_COLOURS[i];
      ctx.fillRect(left, Math.min(a, b), width, Math.abs(b - a));
    }
    ctx.restore();
  };
}

// Marks each measurement with its verdict's colour (at the bottom when it had no value).
function verdictHook(points) {
  return (u) => {
    const { ctx } = u;
    ctx.save();
    points.forEach((p, i) => {
      const x = u.valToPos(u.data[0][i], "x", true);
      const y = p.canary == null ? u.bbox.top + u.bbox.height - 6 : u.valToPos(p.canary, "y", true);
      ctx.fillStyle = VERDICT_COLOURS[p.verdict] ?? "#000";
      ctx.beginPath();
      ctx.arc(x, y, 5 * devicePixelRatio, 0, 2 * Math.PI);
      ctx.fill();
    });
    ctx.restore();
  };
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

/** Appends to `container` the plot of one metric of one analysis run, with a verdict table. */
export function metricPlot(container, plot) {
  const box = el("div", undefined, "plot");
  box.dataset.metric = plot.metric;
  const where = plot.step ? `step ${plot.step}` : "background";
  box.append(el("h3", `${plot.metric} — ${plot.analysis} (${where}, ${plot.runPhase})`));
  container.append(box);
  if (!plot.points.length) {
    box.append(el("p", "no measurements yet", "note"));
    return;
  }
  const xs = plot.points.map((p) => seconds(p.at));
  const canary = plot.points.map((p) => p.canary);
  const baseline = plot.points.map((p) => p.baseline);
  const values = [...canary, ...baseline].filter((v) => v != null);
  if (plot.bands) values.push(plot.bands.target, plot.bands.acceptable, plot.bands.critical);
  const low = Math.min(...values, 0);
  const high = Math.max(...values, 0);
  const pad = (high - low) * 0.08 || 1;
  const options = {
    width: WIDTH, height: 220,
    scales: { x: { time: true }, y: { range: [low - pad, high + pad] } },
    series: [
      {},
      { label: "canary", stroke: "#c53030", width: 2, spanGaps: true, points: { show: false } },
      { label: "baseline", stroke: "#2b6cb0", width: 2, dash: [6, 4], spanGaps: true, points: { show: false } },
    ],
    hooks: {
      drawClear: plot.bands ? [bandsHook(plot.bands)] : [],
      draw: [verdictHook(plot.points)],
    },
  };
  new uPlot(options, [xs, canary, baseline], box);
  if (plot.bands) {
    const b = plot.bands;
    box.append(el("div", `bands (${b.higherIsBetter ? "higher" : "lower"} is better): target ${b.target}, acceptable ${b.acceptable}, critical ${b.critical}`, "note"));
  }
  const table = el("table");
  table.className = "measurements";
  const head = el("tr");
  for (const title of ["At", "Canary", "Baseline", "Verdict", "Against"]) head.append(el("th", title));
  table.append(head);
  for (const p of plot.points) {
    const row = el("tr");
    row.append(el("td", new Date(p.at).toLocaleTimeString()), el("td", p.canary ?? "–"),
      el("td", p.baseline ?? "–"), el("td", p.verdict, `verdict-${p.verdict}`),
      el("td", p.message ? `${p.threshold} (${p.message})` : p.threshold, "note"));
    table.append(row);
  }
  box.append(table);
}

/** Draws in `container` the canary weight over time, as steps. */
export function weightPlot(container, weights) {
  if (!weights.length) {
    container.append(el("p", "no rollout yet", "note"));
    return;
  }
  const xs = weights.map((w) => seconds(w.at));
  const ys = weights.map((w) => w.weight);
  // Hold the last weight until now, so a long pause reads as one.
  xs.push(Math.max(Math.floor(Date.now() / 1000), xs[xs.length - 1]));
  ys.push(ys[ys.length - 1]);
  new uPlot({
    width: WIDTH * 2, height: 160,
    scales: { x: { time: true }, y: { range: [0, 100] } },
    series: [{}, {
      label: "canary weight %", stroke: "#2b6cb0", width: 2, fill: "rgba(43,108,176,.1)",
      paths: uPlot.paths.stepped({ align: 1 }),
    }],
  }, [xs, ys], container);
}
