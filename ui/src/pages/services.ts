import { h, fill, table, notice, badge, ago } from '../dom';
import { call, describe, enc, follow, watch } from '../api';

interface ServiceSummary { name: string; instances: number; passing: number; warning: number; critical: number; tags: string[]; protected: boolean }
interface Instance {
  id: string; address: string; port: number; tags: string[]; zone?: string; version?: string;
  status: string; statusSince: string; output?: string; held?: { status: string; output?: string }; check?: { ttl?: string; http?: string; tcp?: string; interval?: string };
}
interface InstanceSet { service: string; revision: number; protected: boolean; instances: Instance[] }

const statuses = ['passing', 'warning', 'critical'] as const;

// servicesPage: the registry's services, and the instances of the one
// chosen, live over its watch (the whole set again on every change).
export function servicesPage(root: HTMLElement, signal: AbortSignal, arg: string) {
  const list = h('div', { id: 'service-list' });
  const detail = h('div', { id: 'service-detail' });
  fill(root, h('div', { class: 'split' }, list, detail));
  let chosen = arg;
  let watchCtl: AbortController | null = null;

  // The list follows a blocking query, so its counts change as soon as
  // an instance's status does, as the detail's watch does.
  void follow<ServiceSummary[]>('/v1/services', signal, (svcs) => {
    fill(list, table('Services', ['service', ...statuses, 'guard'], svcs.map((s) => [
      h('a', { href: `#/services/${enc(s.name)}`, 'aria-current': s.name === chosen ? 'true' : undefined }, s.name),
      ...statuses.map((st) => h('span', { 'data-service': s.name, 'data-count': st }, String(s[st]))),
      s.protected ? badge('protected') : ''])));
  }, (e) => fill(list, notice('error', `Services: ${describe(e)}`)));

  if (chosen) open(chosen);
  else fill(detail, h('p', { class: 'muted' }, 'Choose a service to see its instances.'));

  function open(name: string) {
    chosen = name;
    watchCtl?.abort();
    watchCtl = new AbortController();
    const ctl = watchCtl;
    signal.addEventListener('abort', () => ctl.abort());
    const state = h('p', { class: 'muted', role: 'status', id: 'service-live' }, 'Connecting…');
    const body = h('div', {});
    fill(detail, h('h2', {}, name), state, body);
    let last: InstanceSet | null = null;
    // statusSince is shown relative to now: redraw every second.
    const tick = window.setInterval(() => { if (last) render(last); }, 1000);
    ctl.signal.addEventListener('abort', () => clearInterval(tick));
    void watch(`/v1/services/${enc(name)}/watch`, ctl.signal, (e) => {
      if (e.event !== 'instances') return;
      last = e.data as InstanceSet;
      fill(state, `Live at revision ${last.revision}`);
      render(last);
    }, (ok, why) => { if (!ok) fill(state, `Watch interrupted (${why}); reconnecting…`); });

    function render(set: InstanceSet) {
      const counts = statuses.map((s) => `${set.instances.filter((i) => i.status === s).length} ${s}`).join(', ');
      fill(body,
        h('p', {}, `${set.instances.length} ${set.instances.length === 1 ? 'instance' : 'instances'}: ${counts}`),
        set.protected ? h('div', { class: 'card warn', id: 'protected' },
          h('p', {}, h('strong', {}, 'Protected by the guard. '),
            'More than the guard\'s share of this service\'s instances would have turned critical within one check period, which is more likely the checker\'s or the network\'s failure than theirs: they keep their last status, and the failing result is shown as held on each. It lifts by itself once enough of them recover.'),
          h('button', { type: 'button', onclick: () => void lift() }, 'Lift protection now')) : null,
        table(`Instances of ${name}`, ['instance', 'status', 'since', 'address', 'zone', 'version', 'tags', 'check', 'output'],
          set.instances.map((i) => [
            i.id,
            h('span', { 'data-instance': i.id, 'data-status': i.status }, badge(i.status),
              i.held ? h('span', { class: 'badge held' }, `held: ${i.held.status}`) : null,
              i.held ? h('span', { class: 'muted' }, ` (the guard holds this ${i.held.status} result back; the instance keeps its status${i.held.output ? `; check said: ${i.held.output}` : ''})`) : null),
            h('span', { title: i.statusSince }, ago(i.statusSince)),
            `${i.address}:${i.port}`, i.zone ?? '', i.version ?? '', (i.tags ?? []).join(', '),
            i.check ? (i.check.ttl ? `TTL ${i.check.ttl}` : i.check.http ? `HTTP ${i.check.http}` : i.check.tcp ? `TCP ${i.check.tcp}` : '') : 'none',
            h('code', {}, i.output ?? '')]), 'no instances'));
    }

    async function lift() {
      try {
        await call('DELETE', `/v1/services/${enc(name)}/protection`, undefined, {}, signal);
      } catch (e) {
        body.prepend(notice('error', `Lifting protection: ${describe(e)}`));
      }
    }
  }
}
