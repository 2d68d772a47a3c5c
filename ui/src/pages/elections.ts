import { h, fill, table, notice, ago, pretty } from '../dom';
import { ApiError, describe, enc, every, get, watch } from '../api';

interface Election { name: string; leader?: string; term?: number; token?: number; ttl?: string; expiresAt?: string; queue?: number; value?: unknown }
interface Page { items: Election[]; next: string | null }

// electionsPage: every election with its leader, term, token, queue and
// a countdown to its expiry; for the one chosen, its watch: the leader
// as it changes and the leaderships the log still holds.
export function electionsPage(root: HTMLElement, signal: AbortSignal, arg: string) {
  const list = h('div', { id: 'election-list' });
  const detail = h('div', { id: 'election-detail' });
  fill(root, h('div', { class: 'split' }, list, detail));
  let items: Election[] = [];

  // the list is read every 2 s and on each event of the election
  // followed; the countdowns tick every second
  const load = async () => {
    try {
      items = (await get<Page>('/v1/elections?limit=500', signal)).items;
      render();
    } catch (e) {
      fill(list, notice('error', `Elections: ${describe(e)}`));
    }
  };
  every(2000, signal, load);
  const tick = window.setInterval(render, 1000);
  signal.addEventListener('abort', () => clearInterval(tick));

  function render() {
    fill(list, table('Elections', ['election', 'leader', 'term', 'token', 'queue', 'expires'], items.map((e) => [
      h('a', { href: `#/elections/${enc(e.name)}` }, e.name), e.leader ?? h('em', {}, 'nobody'), String(e.term ?? ''), String(e.token ?? ''),
      String(e.queue ?? 0), e.expiresAt ? ago(e.expiresAt) : ''])));
  }

  if (arg) follow(arg);
  else fill(detail, h('p', { class: 'muted' }, 'Choose an election to follow its leadership.'));

  function follow(name: string) {
    const state = h('p', { class: 'muted', role: 'status' }, 'Connecting…');
    const now = h('div', { id: 'leader', 'aria-live': 'polite' });
    const history = h('tbody', {});
    fill(detail, h('h2', {}, name), state, now,
      h('h3', {}, 'History of leaderships'),
      h('div', { class: 'scroll' }, h('table', {}, h('caption', {}, `Events of ${name} the log still holds, newest first`),
        h('thead', {}, h('tr', {}, ['revision', 'event', 'leader', 'term', 'token'].map((c) => h('th', { scope: 'col' }, c)))), history)));
    let current: Election | null = null;
    const tick = window.setInterval(() => showLeader(), 1000);
    signal.addEventListener('abort', () => clearInterval(tick));

    function showLeader() {
      if (!current?.leader) { fill(now, h('p', {}, 'Nobody leads ', name, '.')); return; }
      fill(now, h('dl', { class: 'facts' },
        h('dt', {}, 'Leader'), h('dd', { id: 'leader-name' }, current.leader),
        h('dt', {}, 'Term'), h('dd', {}, String(current.term)),
        h('dt', {}, 'Token'), h('dd', {}, String(current.token)),
        h('dt', {}, 'Waiting'), h('dd', {}, String(current.queue ?? 0)),
        h('dt', {}, 'Lease'), h('dd', {}, `${current.ttl}, expires ${ago(current.expiresAt)}`),
        current.value !== undefined ? [h('dt', {}, 'Value'), h('dd', {}, h('code', {}, pretty(current.value)))] : null));
    }

    async function reread() {
      try {
        current = await get<Election>(`/v1/elections/${enc(name)}`, signal);
      } catch (e) {
        current = null;
        if (!(e instanceof ApiError && e.status === 404)) fill(now, notice('error', describe(e)));
      }
      showLeader();
    }

    // Candidates joining the line make no event: the election is read
    // again every 2 s, as the list is, besides after each event.
    every(2000, signal, reread);

    // From revision 1: the watch replays the events still held, then
    // follows; the current leader is read again after each.
    const unnumbered: HTMLElement[] = [];
    void watch(`/v1/elections/${enc(name)}/watch?fromRevision=1`, signal, (e) => {
      fill(state, `Live (last event at revision ${e.id || '?'})`);
      const d = (e.data ?? {}) as Election & { candidate?: string };
      if (['elected', 'resigned', 'expired'].includes(e.event)) {
        const rev = h('td', {}, e.id);
        history.prepend(h('tr', {}, rev, [e.event, d.leader ?? d.candidate ?? '', String(d.term ?? ''), String(d.token ?? '')].map((c) => h('td', {}, c))));
        unnumbered.push(rev);
      }
      // Only the last event of a revision carries its id: the events
      // before it in the same entry get it then.
      if (e.id) {
        for (const td of unnumbered) td.textContent = e.id;
        unnumbered.length = 0;
      }
      void reread();
      void load();
    }, (ok, why) => { if (!ok) fill(state, `Watch interrupted (${why}); reconnecting…`); });
  }
}
