// The scaler's plots, drawn with uPlot (about 50 KB): replicas on the
// left axis, metrics and their targets on the right, decisions as points.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Line {
  label: string;
  values: (number | null)[];
  axis: 'replicas' | 'metric';
  dash?: boolean;
  points?: boolean;
}

const colours = ['#1f5fbf', '#b03a2e', '#1e7b34', '#7a4fb3', '#a05a00', '#00707a', '#5c5c5c'];

// plot draws lines over times (seconds since the epoch, ascending) into
// box; onHover gets the index under the cursor (or null) so the page can
// explain the decision there.
export function plot(box: HTMLElement, title: string, times: number[], lines: Line[], onHover: (i: number | null) => void): uPlot {
  const width = Math.max(280, Math.min(box.clientWidth || 800, 1100));
  const opts: uPlot.Options = {
    title,
    width,
    height: 320,
    scales: { x: { time: true }, replicas: { range: (_u, min, max) => [0, Math.max(max + 1, min + 2)] } },
    axes: [
      // whole seconds at least (decisions are seconds apart), as clock times
      { incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400], space: 70,
        values: (_u, ticks) => ticks.map((t) => new Date(t * 1000).toLocaleTimeString()) },
      { scale: 'replicas', label: 'replicas' },
      { scale: 'metric', side: 1, label: 'metric', grid: { show: false } },
    ],
    series: [
      { label: 'time' },
      ...lines.map((l, i): uPlot.Series => ({
        label: l.label,
        scale: l.axis,
        stroke: colours[i % colours.length],
        width: 2,
        dash: l.dash ? [6, 4] : undefined,
        paths: l.axis === 'replicas' ? uPlot.paths.stepped!({ align: 1 }) : undefined,
        points: { show: l.points ?? false, size: 8 },
        spanGaps: true,
      })),
    ],
    hooks: { setCursor: [(u) => onHover(u.cursor.idx ?? null)] },
  };
  const data = [times, ...lines.map((l) => l.values)] as uPlot.AlignedData;
  box.replaceChildren();
  return new uPlot(opts, data, box);
}
