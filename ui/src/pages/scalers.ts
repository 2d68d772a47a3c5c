import { h, fill, table, notice, pretty } from '../dom';
import { ApiError, call, describe, enc, every, get, watch } from '../api';
import { plot, type Line } from '../plot';

interface MetricDecision { name: string; type?: string; target?: number; usage?: number; ratio?: number; proposal?: number; error?: string }
interface Decision {
  revision?: number; at: string; currentReplicas: number; readyReplicas?: number; desiredReplicas: number; reason: string;
  metrics?: MetricDecision[]; observed?: Record<string, number>; proposedBy?: string; error?: string;
}
interface Scaler {
  name: string; modRevision: number; generation: number;
  spec: { service: string; minReplicas: number; maxReplicas: number; metrics: { name: string; target: { type: string; value: number } }[] } & Record<string, unknown>;
  status: { currentReplicas: number; desiredReplicas: number; conditions: { type: string; status: boolean; reason: string; message: string }[]; lastScaleTime?: string; driverError?: string };
}
interface Simulation {
  decisions: Decision[];
  summary: { decisions: number; changes: number; minReplicas: number; maxReplicas: number; finalReplicas: number };
}

// scalersPage: every scaler; for the one chosen, its spec and status, a
// plot of its decisions (replicas against each metric and its target,
// each decision explained on hover or in the table), live over its
// watch, and a panel that replays the recorded series through an edited
// spec beside what really happened.
export function scalersPage(root: HTMLElement, signal: AbortSignal, arg: string) {
  const list = h('div', { id: 'scaler-list' });
  const detail = h('div', { id: 'scaler-detail' });
  fill(root, list, detail);

  const loadList = async () => {
    try {
      const items = (await get<{ items: Scaler[] }>('/v1/scalers?limit=500', signal)).items;
      fill(list, table('Scalers', ['scaler', 'service', 'current', 'desired', 'bounds'], items.map((s) => [
        h('a', { href: `#/scalers/${enc(s.name)}` }, s.name), s.spec.service, String(s.status.currentReplicas), String(s.status.desiredReplicas),
        `${s.spec.minReplicas}–${s.spec.maxReplicas}`])));
    } catch (e) {
      fill(list, notice('error', `Scalers: ${describe(e)}`));
    }
  };
  every(5000, signal, loadList);
  if (arg) show(arg);

  function show(name: string) {
    const state = h('p', { class: 'muted', role: 'status', id: 'scaler-live' }, 'Connecting…');
    const facts = h('div', {});
    const chart = h('div', { id: 'scaler-plot', class: 'plot' });
    const explain = h('p', { id: 'decision-explain', class: 'card', 'aria-live': 'polite' }, 'Hover over the plot, or read the table below, for each decision\'s explanation.');
    const decisionsBox = h('div', { id: 'decisions' });
    const sim = simulatePanel(name, signal);
    fill(detail, h('h2', {}, name), state, facts,
      h('h3', {}, 'Replicas and metrics over time'), chart, explain, decisionsBox, sim.el);
    let pending = 0;
    void watch(`/v1/scalers/${enc(name)}/watch`, signal, (e) => {
      fill(state, `Live (last event: ${e.event} at revision ${e.id || '?'})`);
      clearTimeout(pending);
      pending = window.setTimeout(() => void refresh(), 150);
    }, (ok, why) => { if (!ok) fill(state, `Watch interrupted (${why}); reconnecting…`); });

    async function refresh() {
      try {
        const [s, d] = await Promise.all([
          get<Scaler>(`/v1/scalers/${enc(name)}`, signal),
          get<{ items: Decision[] }>(`/v1/scalers/${enc(name)}/decisions?limit=100`, signal),
        ]);
        const decisions = [...d.items].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
        renderFacts(s);
        void loadList();
        sim.setSpec(s, decisions);
        renderPlot(s, decisions);
        fill(decisionsBox, table('Decisions, newest first', ['at', 'current', 'desired', 'metrics', 'explanation'],
          [...decisions].reverse().map((x) => [new Date(x.at).toLocaleTimeString(), String(x.currentReplicas), String(x.desiredReplicas),
            (x.metrics ?? []).map((m) => `${m.name} ${fmt(m.usage)} / ${fmt(m.target)}`).join('; '), x.error ? `${x.reason} (${x.error})` : x.reason]), 'no decisions yet'));
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) fill(facts, notice('info', `There is no scaler ${name}.`));
        else fill(facts, notice('error', describe(e)));
      }
    }

    function renderFacts(s: Scaler) {
      fill(facts, h('dl', { class: 'facts' },
        h('dt', {}, 'Service'), h('dd', {}, s.spec.service),
        h('dt', {}, 'Replicas'), h('dd', { id: 'scaler-replicas' }, `${s.status.currentReplicas} current, ${s.status.desiredReplicas} desired (${s.spec.minReplicas}–${s.spec.maxReplicas})`),
        h('dt', {}, 'Metrics'), h('dd', {}, s.spec.metrics.map((m) => `${m.name}: ${m.target.type} ${m.target.value}`).join('; ') || 'none'),
        h('dt', {}, 'Conditions'), h('dd', {}, s.status.conditions.map((c) => `${c.type}=${c.status} (${c.reason}: ${c.message})`).join('; ') || 'none'),
        s.status.driverError ? [h('dt', {}, 'Driver error'), h('dd', {}, s.status.driverError)] : null),
      h('details', {}, h('summary', {}, 'Spec'), h('pre', {}, pretty(s.spec))));
    }

    function renderPlot(s: Scaler, ds: Decision[]) {
      if (ds.length === 0) { fill(chart, h('p', { class: 'muted' }, 'No decisions yet.')); return; }
      const times = ds.map((x) => Date.parse(x.at) / 1000);
      const lines: Line[] = [
        { label: 'desired replicas', axis: 'replicas', values: ds.map((x) => x.desiredReplicas), points: true },
        { label: 'current replicas', axis: 'replicas', values: ds.map((x) => x.currentReplicas), dash: true },
      ];
      for (const m of s.spec.metrics) {
        lines.push({ label: m.name, axis: 'metric', values: ds.map((x) => metricValue(x, m.name)) });
        lines.push({ label: `${m.name} target`, axis: 'metric', dash: true, values: ds.map((x) => x.metrics?.find((y) => y.name === m.name)?.target ?? m.target.value) });
      }
      plot(chart, `${name}: decisions (points), replicas and metrics`, times, lines, (i) => {
        if (i === null || !ds[i]) return;
        const x = ds[i];
        fill(explain, h('strong', {}, `${new Date(x.at).toLocaleTimeString()}: ${x.currentReplicas} → ${x.desiredReplicas}. `), x.reason,
          (x.metrics ?? []).map((m) => ` ${m.name}: ${fmt(m.usage)} against ${fmt(m.target)} (${m.type ?? ''}${m.ratio !== undefined ? `, ratio ${fmt(m.ratio)}` : ''}${m.proposal !== undefined ? `, proposes ${m.proposal}` : ''}${m.error ? `, ${m.error}` : ''}).`));
      });
      chart.setAttribute('data-decisions', String(ds.length));
    }
  }
}

function metricValue(d: Decision, name: string): number | null {
  const m = d.metrics?.find((x) => x.name === name);
  if (m && !m.error && m.usage !== undefined) return m.usage;
  return d.observed?.[name] ?? null;
}

function fmt(v: number | undefined): string {
  if (v === undefined) return '?';
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

// simulatePanel: the spec in an editor; replaying sends it with no
// series, so the scaler replays the series its recorded decisions
// observed, and the answer is drawn beside the replicas really decided.
function simulatePanel(name: string, signal: AbortSignal) {
  const area = h('textarea', { id: 'sim-spec', name: 'sim-spec', rows: 10, spellcheck: 'false' });
  const out = h('div', { id: 'sim-result' });
  const chart = h('div', { id: 'sim-plot', class: 'plot' });
  const explain = h('p', { class: 'muted', 'aria-live': 'polite' });
  let real: Decision[] = [];
  let touched = false;
  area.addEventListener('input', () => { touched = true; });
  const form = h('form', {},
    h('label', { for: 'sim-spec' }, 'Spec to try (JSON)'), area,
    h('div', { class: 'row' }, h('button', { type: 'submit', id: 'simulate' }, 'Replay the recorded series')));
  form.addEventListener('submit', (e) => { e.preventDefault(); void run(); });
  const el = h('section', { class: 'card', 'aria-labelledby': 'sim-title' }, h('h3', { id: 'sim-title' }, 'Simulate'),
    h('p', { class: 'muted' }, 'Edit the spec and replay the metrics the recorded decisions observed: nothing acts on it.'), form, out, chart, explain);

  async function run() {
    let spec: unknown;
    try { spec = JSON.parse(area.value); } catch (err) { fill(out, notice('error', `Not valid JSON: ${(err as Error).message}`)); return; }
    try {
      const r = (await call<Simulation>('POST', `/v1/scalers/${enc(name)}/simulate`, { spec }, {}, signal)).body;
      fill(out, notice('ok', `${r.summary.decisions} decisions, ${r.summary.changes} changes, replicas ${r.summary.minReplicas}–${r.summary.maxReplicas}, ending at ${r.summary.finalReplicas}.`));
      const sim = r.decisions;
      const at = [...new Set([...sim, ...real].map((d) => Date.parse(d.at) / 1000))].sort((a, b) => a - b);
      const by = (ds: Decision[]) => { const m = new Map(ds.map((d) => [Date.parse(d.at) / 1000, d.desiredReplicas])); return at.map((t) => m.get(t) ?? null); };
      plot(chart, 'replicas: simulated against recorded', at, [
        { label: 'simulated replicas', axis: 'replicas', values: by(sim), points: true },
        { label: 'recorded replicas', axis: 'replicas', values: by(real), dash: true, points: true },
      ], (i) => {
        const d = i === null ? undefined : sim.find((x) => Date.parse(x.at) / 1000 === at[i]);
        if (d) fill(explain, `Simulated at ${new Date(d.at).toLocaleTimeString()}: ${d.currentReplicas} → ${d.desiredReplicas}. ${d.reason}`);
      });
    } catch (err) {
      const fields = err instanceof ApiError && Array.isArray(err.problem.errors) ? (err.problem.errors as { field: string; message: string }[]).map((f) => `${f.field}: ${f.message}`).join('; ') : '';
      fill(out, notice('error', `Simulation refused: ${describe(err)}${fields ? ` (${fields})` : ''}`));
    }
  }

  return {
    el,
    setSpec(s: Scaler, decisions: Decision[]) {
      real = decisions;
      // The spec is filled in once (and again after a PUT elsewhere,
      // until the reader edits it): the editor must not move under them.
      if (!touched && area.dataset.revision !== String(s.modRevision)) {
        area.value = pretty(s.spec);
        area.dataset.revision = String(s.modRevision);
        area.scrollTop = 0;
      }
    },
  };
}
