import { h, fill, table, notice, badge } from '../dom';
import { ApiError, call, describe, every, get } from '../api';
import { parseCounts, rates, type Counts } from '../metrics';

interface Peer { name: string; current: boolean; lag: number }
interface Stream { name: string; messages: number; bytes: number; firstSequence: number; lastSequence: number; replicas: number; leader: string; peers: Peer[] }
interface Replica { id: string; url: string; health: string; ready: boolean; voter: boolean; revision: number; appliedSequence: number; lag: number; error: string }
interface ClusterService { service: string; stream: Stream | null; replicas: Replica[]; error: string }
interface ServiceSummary { name: string; instances: number; passing: number; warning: number; critical: number; protected: boolean }

// overview: each Steward service's replicas and stream (from
// /gateway/cluster, when this gateway has it), the registry's services,
// and request and error rates from /metrics, refreshed every 5 s.
export function overview(root: HTMLElement, signal: AbortSignal) {
  const cluster = h('div', { id: 'cluster' }, notice('info', 'Loading…'));
  const traffic = h('div', { id: 'traffic' }, notice('info', 'Measuring (two scrapes of /metrics, 5 s apart)…'));
  const services = h('div', { id: 'overview-services' });
  fill(root,
    h('h2', {}, 'Replicas and streams'), cluster,
    h('h2', {}, 'Requests through the gateway'), traffic,
    h('h2', {}, 'Registered services'), services);
  let prev: Counts | null = null;
  every(5000, signal, async () => {
    await Promise.all([
      get<{ services: ClusterService[] }>('/gateway/cluster', signal).then(
        (c) => fill(cluster, c.services.map(clusterCard)),
        (e) => fill(cluster, e instanceof ApiError && e.status === 404
          ? notice('info', 'Replica and stream state is not available from this gateway (/gateway/cluster answered 404).')
          : notice('error', `Cluster state: ${describe(e)}`))),
      call<string>('GET', '/metrics', undefined, {}, signal).then((a) => {
        const next = parseCounts(a.body, Date.now());
        if (prev) {
          fill(traffic, table('Rates over the last scrape interval', ['service', 'requests/s', 'errors (5xx)'],
            rates(prev, next).map((r) => [r.service === 'none' ? '(no route: 404s, refused)' : r.service, r.rps.toFixed(2), `${(r.errorRatio * 100).toFixed(1)}%`]), 'no requests counted yet'));
        }
        prev = next;
      }, (e) => fill(traffic, notice('error', `/metrics: ${describe(e)}`))),
      get<ServiceSummary[]>('/v1/services', signal).then((list) => fill(services, table('Services', ['service', 'passing', 'warning', 'critical', 'guard'],
        list.map((s) => [h('a', { href: `#/services/${encodeURIComponent(s.name)}` }, s.name), String(s.passing), String(s.warning), String(s.critical), s.protected ? badge('protected') : ''])))),
    ]).catch(() => {});
  });
}

function clusterCard(s: ClusterService): HTMLElement {
  const st = s.stream;
  return h('article', { class: 'card' },
    h('h3', {}, s.service),
    s.error ? notice('error', `Unreachable: ${s.error}`) : null,
    st ? h('p', {}, `Stream ${st.name}: ${st.messages} messages, ${(st.bytes / 1024).toFixed(1)} KiB, sequences ${st.firstSequence}–${st.lastSequence}, ${st.replicas} ${st.replicas === 1 ? 'replica' : 'replicas'}, leader ${st.leader}`,
      st.peers.length ? `; peers ${st.peers.map((p) => `${p.name} (${p.current ? 'current' : 'behind'}, lag ${p.lag})`).join(', ')}` : '') : h('p', { class: 'muted' }, 'No stream information.'),
    table(`${s.service} replicas`, ['replica', 'health', 'ready', 'role', 'revision', 'applied', 'lag', 'error'],
      s.replicas.map((r) => [h('span', { title: r.url }, r.id), badge(r.health), r.ready ? 'ready' : 'not ready', r.voter ? 'voter' : 'observer',
        String(r.revision), String(r.appliedSequence), String(r.lag), r.error])));
}
