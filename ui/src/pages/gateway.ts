import { h, fill, table, notice, pretty } from '../dom';
import { ApiError, call, describe, every, get, keyPath } from '../api';

interface RouteDoc { name: string; service: string; match: { pathPrefix?: string; host?: string; headers?: Record<string, string> } } 
interface RouteStatus { revision: number; routes: (RouteDoc & Record<string, unknown>)[]; rejected: { name: string; reason: string; revision: number }[] }
interface UpInstance { id: string; address: string; version: string; zone: string; ejected: boolean; inFlight: number; ewmaMs: number }
interface Upstreams { services: { service: string; versions: string[]; instances: UpInstance[] }[] }

// routesPrefix is where the gateway reads route documents in config
// (gateway/routesource.Prefix).
const routesPrefix = '/steward/gateway/routes/';

const example = {
  match: { pathPrefix: '/api/', host: '', headers: {} },
  service: 'api',
  stripPrefix: true,
  timeout: '10s',
};

// gatewayPage: the routes in force and the documents the gateway
// rejected, an editor that writes a route document to config and waits
// for the gateway to apply or reject it, and each upstream's instances.
export function gatewayPage(root: HTMLElement, signal: AbortSignal) {
  const routes = h('div', { id: 'routes' });
  const upstreams = h('div', { id: 'upstreams' });
  const nameInput = h('input', { id: 'route-name', name: 'route-name', required: true, pattern: '[A-Za-z0-9._-]+', spellcheck: 'false' });
  const doc = h('textarea', { id: 'route-doc', name: 'route-doc', rows: 12, spellcheck: 'false' });
  doc.value = pretty(example);
  const result = h('div', { id: 'route-result' });
  const form = h('form', { id: 'route-form' },
    h('label', { for: 'route-name' }, 'Route name'), nameInput,
    h('label', { for: 'route-doc' }, 'Route document (JSON)'), doc,
    h('div', { class: 'row' }, h('button', { type: 'submit', id: 'apply-route' }, 'Apply')), result);
  form.addEventListener('submit', (e) => { e.preventDefault(); void apply(); });
  fill(root,
    h('h2', {}, 'Routes'), routes,
    h('h2', {}, 'Edit a route'), h('p', { class: 'muted' }, `Written to config at ${routesPrefix}<name>; the gateway applies it when it validates, and keeps the previous version otherwise.`), form,
    h('h2', {}, 'Upstreams'), upstreams);

  let status: RouteStatus | null = null;
  every(3000, signal, async () => {
    try {
      status = await get<RouteStatus>('/gateway/routes', signal);
      renderRoutes(status);
    } catch (e) {
      fill(routes, notice('error', `Routes: ${describe(e)}`));
    }
    try {
      const up = await get<Upstreams>('/gateway/upstreams', signal);
      fill(upstreams, up.services.map((s) => table(`${s.service} (versions ${s.versions.join(', ') || 'none'})`,
        ['instance', 'address', 'version', 'zone', 'ejected', 'in flight', 'latency (EWMA)'],
        s.instances.map((i) => [i.id, i.address, i.version, i.zone, i.ejected ? 'ejected' : 'no', String(i.inFlight), `${i.ewmaMs.toFixed(2)} ms`]), 'no instances')));
      if (up.services.length === 0) fill(upstreams, h('p', { class: 'muted' }, 'No upstreams followed yet.'));
    } catch (e) {
      fill(upstreams, e instanceof ApiError && e.status === 404
        ? notice('info', 'Per-upstream instances are not available from this gateway (/gateway/upstreams answered 404).')
        : notice('error', `Upstreams: ${describe(e)}`));
    }
  });

  function renderRoutes(s: RouteStatus) {
    fill(routes,
      table(`Routes in force (config revision ${s.revision})`, ['route', 'match', 'service', 'document'], s.routes.map((r) => [
        h('button', { type: 'button', class: 'link', 'data-route': r.name, onclick: () => edit(r) }, r.name),
        [r.match.host ? `host ${r.match.host} ` : '', r.match.pathPrefix ? `path ${r.match.pathPrefix}` : '', Object.keys(r.match.headers ?? {}).length ? ` headers ${JSON.stringify(r.match.headers)}` : ''].join(''),
        r.service, h('details', {}, h('summary', {}, 'JSON'), h('pre', {}, pretty(r)))]), 'no routes in force'),
      table('Rejected documents', ['route', 'revision', 'reason'], s.rejected.map((r) => [r.name, String(r.revision), r.reason]), 'none'));
  }

  function edit(r: RouteDoc & Record<string, unknown>) {
    const { name, ...rest } = r;
    nameInput.value = name;
    doc.value = pretty(rest);
    doc.focus();
  }

  async function apply() {
    const name = nameInput.value.trim();
    let body: unknown;
    try { body = JSON.parse(doc.value); } catch (err) { fill(result, notice('error', `Not valid JSON, nothing sent: ${(err as Error).message}`)); return; }
    try {
      const put = (await call<{ modRevision: number }>('PUT', keyPath(routesPrefix + name), body, {}, signal)).body;
      fill(result, notice('info', `Written at revision ${put.modRevision}; waiting for the gateway…`));
      for (let i = 0; i < 40 && !signal.aborted; i++) {
        const s = await get<RouteStatus>('/gateway/routes', signal);
        const rejected = s.rejected.find((x) => x.name === name && x.revision >= put.modRevision);
        if (rejected) { renderRoutes(s); fill(result, notice('error', `Rejected by the gateway: ${rejected.reason}`)); return; }
        if (s.revision >= put.modRevision && s.routes.some((x) => x.name === name)) { renderRoutes(s); fill(result, notice('ok', `Route ${name} is in force.`)); return; }
        await new Promise((r) => setTimeout(r, 250));
      }
      fill(result, notice('error', 'The gateway has not applied it yet; see the routes above.'));
    } catch (err) {
      fill(result, notice('error', `Not applied: ${describe(err)}`));
    }
  }
}

