import { h, fill, table, notice, pretty, ago } from '../dom';
import { ApiError, call, describe, enc, get, keyPath, watch } from '../api';
import { diffView } from '../diff';

interface Entry { key: string; value?: unknown; createRevision: number; modRevision: number; version: number; lease?: number; by?: string; deleted?: boolean }
interface List { items: Entry[]; revision: number; next: string | null }
interface Lease { id: number; ttl: string; expiresAt: string; keys: string[] }

const pageSize = 50;

// configPage: keys under a prefix as a tree, one page at a time; a
// value viewer and editor that writes with compare-and-set on the
// revision it loaded; the key's history with diffs; its lease; all kept
// current by a watch on the prefix.
export function configPage(root: HTMLElement, signal: AbortSignal, arg: string) {
  let prefix = arg.startsWith('/') ? arg : '/';
  let after: string[] = [];   // the cursors of the pages before this one
  let cursor = '';
  let selected = '';
  let watchCtl: AbortController | null = null;

  const prefixInput = h('input', { id: 'prefix', name: 'prefix', value: prefix, spellcheck: 'false' });
  const listBox = h('div', { id: 'keys' });
  const live = h('p', { id: 'config-live', class: 'muted', role: 'status' });
  const editor = h('div', { id: 'editor' });
  const leases = h('div', { id: 'leases' });
  const prefixForm = h('form', { class: 'row' },
    h('label', { for: 'prefix' }, 'Prefix'), prefixInput, h('button', { type: 'submit' }, 'List'));
  prefixForm.addEventListener('submit', (e) => { e.preventDefault(); go(prefixInput.value || '/'); });

  const newKey = h('input', { id: 'new-key', name: 'new-key', placeholder: '/app/feature', spellcheck: 'false' });
  const newForm = h('form', { class: 'row' },
    h('label', { for: 'new-key' }, 'New key'), newKey, h('button', { type: 'submit', id: 'create-key' }, 'Create'));
  newForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const k = newKey.value.trim();
    if (k) openEditor(k.startsWith('/') ? k : `/${k}`, null);
  });

  // There is no list of leases in the API: the page offers the leases
  // of the keys it lists, and any lease by its id.
  const pageLeases = h('div', { id: 'page-leases' });
  const leaseInput = h('input', { id: 'lease-id', name: 'lease-id', inputmode: 'numeric', pattern: '[0-9]+', size: 10 });
  const leaseForm = h('form', { class: 'row' },
    h('label', { for: 'lease-id' }, 'Lease'), leaseInput, h('button', { type: 'submit' }, 'Show'));
  leaseForm.addEventListener('submit', (e) => { e.preventDefault(); if (leaseInput.value) void showLease(Number(leaseInput.value)); });

  fill(root,
    h('div', { class: 'split' },
      h('div', {}, h('h2', {}, 'Keys'), prefixForm, live, listBox, newForm, h('h2', {}, 'Leases'), pageLeases, leaseForm),
      h('div', {}, editor, leases)));

  function go(p: string) {
    prefix = p.startsWith('/') ? p : `/${p}`;
    prefixInput.value = prefix;
    // The prefix is in the address, for a reload or a link, without a
    // hashchange that would render the page again.
    history.replaceState(null, '', `#/config/${prefix.split('/').map(encodeURIComponent).join('/')}`);
    after = [];
    cursor = '';
    void list();
    follow();
  }

  async function list() {
    try {
      const q = `/v1/kv?prefix=${enc(prefix)}&keysOnly=true&limit=${pageSize}${cursor ? `&after=${enc(cursor)}` : ''}`;
      const page = await get<List>(q, signal);
      renderList(page);
    } catch (e) {
      fill(listBox, notice('error', `Listing ${prefix}: ${describe(e)}`));
    }
  }

  // renderList shows the next path segment under the prefix: folders to
  // open, keys to select.
  function renderList(page: List) {
    const folders = new Set<string>();
    const keys: Entry[] = [];
    for (const it of page.items) {
      const rest = it.key.slice(prefix.length);
      const slash = rest.indexOf('/');
      if (slash >= 0 && slash < rest.length - 1) folders.add(prefix + rest.slice(0, slash + 1));
      else keys.push(it);
    }
    const up = prefix !== '/' ? prefix.replace(/[^/]*\/$/, '') || '/' : '';
    const ids = [...new Set(page.items.filter((it) => it.lease).map((it) => it.lease!))];
    fill(pageLeases, ids.length
      ? h('ul', { class: 'tree', 'aria-label': 'Leases of the keys listed' }, ids.map((id) => h('li', {},
        h('button', { type: 'button', class: 'link', onclick: () => void showLease(id) }, `lease ${id}`))))
      : h('p', { class: 'muted' }, 'No key listed here holds a lease.'));
    fill(listBox,
      h('ul', { class: 'tree', 'aria-label': `Keys under ${prefix}` },
        up ? h('li', {}, h('button', { type: 'button', class: 'link', onclick: () => go(up) }, `↑ ${up}`)) : null,
        [...folders].map((f) => h('li', {}, h('button', { type: 'button', class: 'link folder', onclick: () => go(f) }, `${f.slice(prefix.length)}`))),
        keys.map((k) => h('li', {}, h('button', { type: 'button', class: 'link key', 'data-key': k.key, 'aria-pressed': String(k.key === selected), onclick: () => void select(k.key) },
          k.key.slice(prefix.length) || k.key), h('span', { class: 'muted' }, ` rev ${k.modRevision}${k.lease ? `, lease ${k.lease}` : ''}`)))),
      page.items.length === 0 ? h('p', { class: 'muted' }, 'No keys under this prefix.') : null,
      h('div', { class: 'row' },
        after.length ? h('button', { type: 'button', onclick: () => { cursor = after.pop() ?? ''; void list(); } }, 'Previous page') : null,
        page.next ? h('button', { type: 'button', onclick: () => { after.push(cursor); cursor = page.next!; void list(); } }, 'Next page') : null));
  }

  // follow watches the prefix from now on: the list and an open key
  // follow what others write.
  function follow() {
    watchCtl?.abort();
    watchCtl = new AbortController();
    const ctl = watchCtl;
    signal.addEventListener('abort', () => ctl.abort());
    let pending = 0;
    void watch(`/v1/watch?prefix=${enc(prefix)}`, ctl.signal, (e) => {
      const d = e.data as { entry?: Entry };
      if (!d?.entry) return;
      fill(live, `Live: ${e.event} ${d.entry.key} at revision ${d.entry.modRevision}`);
      if (d.entry.key === selected) serverMoved(d.entry, e.event);
      clearTimeout(pending);
      pending = window.setTimeout(() => void list(), 200);
    }, (ok, why) => { if (!ok) fill(live, `Watch interrupted (${why}); reconnecting…`); });
  }

  let loaded: Entry | null = null;
  let movedNote: HTMLElement | null = null;

  async function select(key: string) {
    selected = key;
    for (const b of listBox.querySelectorAll('button.key')) b.setAttribute('aria-pressed', String(b.getAttribute('data-key') === key));
    try {
      const a = await call<Entry>('GET', keyPath(key), undefined, {}, signal);
      openEditor(key, a.body);
    } catch (e) {
      fill(editor, notice('error', `Reading ${key}: ${describe(e)}`));
    }
  }

  function serverMoved(entry: Entry, event: string) {
    if (!movedNote || !loaded || entry.modRevision <= loaded.modRevision) return;
    fill(movedNote, notice('info', `${event === 'delete' ? 'Deleted' : 'Changed'} on the server at revision ${entry.modRevision} since you loaded revision ${loaded.modRevision}; saving will be refused unless you reload.`));
  }

  // openEditor shows a key's value for editing; entry null is a key to
  // create (If-None-Match: *), else the save is a compare-and-set on
  // the revision loaded (If-Match).
  function openEditor(key: string, entry: Entry | null) {
    selected = key;
    loaded = entry;
    const area = h('textarea', { id: 'value', name: 'value', rows: 12, spellcheck: 'false', 'aria-describedby': 'value-help' });
    area.value = entry ? pretty(entry.value) : '{\n  \n}';
    const result = h('div', { id: 'save-result' });
    movedNote = h('div', { id: 'moved' });
    const history = h('div', { id: 'history' });
    const form = h('form', { id: 'edit-form' },
      h('label', { for: 'value' }, 'Value (JSON)'), area,
      h('p', { id: 'value-help', class: 'muted' }, entry
        ? `Saving writes only if the key is still at revision ${entry.modRevision} (compare-and-set).`
        : 'Creating writes only if the key does not exist yet.'),
      h('div', { class: 'row' },
        h('button', { type: 'submit', id: 'save' }, entry ? 'Save' : 'Create'),
        entry ? h('button', { type: 'button', id: 'reload', onclick: () => void select(key) }, 'Reload') : null,
        entry ? h('button', { type: 'button', class: 'danger', id: 'delete', onclick: () => void remove() }, 'Delete') : null),
      result);
    form.addEventListener('submit', (e) => { e.preventDefault(); void save(); });
    fill(editor,
      h('h2', {}, key),
      entry ? h('p', { class: 'muted' }, `revision ${entry.modRevision}, version ${entry.version}, created at ${entry.createRevision}${entry.by ? `, by ${entry.by}` : ''}${entry.lease ? `, lease ${entry.lease}` : ''}`) : null,
      movedNote, form, history);
    if (entry) void showHistory(key, history);
    fill(leases);
    if (entry?.lease) void showLease(entry.lease);

    async function save() {
      let value: unknown;
      try {
        value = JSON.parse(area.value);
      } catch (err) {
        fill(result, notice('error', `Not valid JSON, nothing sent: ${(err as Error).message}`));
        area.setAttribute('aria-invalid', 'true');
        area.focus();
        return;
      }
      area.removeAttribute('aria-invalid');
      const cond: Record<string, string> = entry ? { 'If-Match': `"${entry.modRevision}"` } : { 'If-None-Match': '*' };
      const lease = entry?.lease ? `?lease=${entry.lease}` : '';
      try {
        const a = await call<Entry>('PUT', keyPath(key) + lease, value, cond, signal);
        openEditor(key, a.body);
        fill(document.getElementById('save-result')!, notice('ok', `Saved at revision ${a.body.modRevision}.`));
        void list();
      } catch (err) {
        if (err instanceof ApiError && err.status === 412) await conflict(value);
        else fill(result, notice('error', `Not saved: ${describe(err)}`));
      }
    }

    // conflict shows why a compare-and-set failed: what is there now,
    // against what was loaded and against what was about to be written.
    async function conflict(mine: unknown) {
      let now: Entry | null = null;
      try { now = (await call<Entry>('GET', keyPath(key), undefined, {}, signal)).body; } catch { /* deleted meanwhile */ }
      fill(result, h('div', { id: 'conflict', class: 'card conflict' },
        notice('error', entry
          ? `Not saved (412): the key moved from revision ${entry.modRevision} to ${now ? `${now.modRevision}${now.by ? ` by ${now.by}` : ''}` : 'deleted'} since you loaded it.`
          : `Not created (412): the key exists already${now ? ` at revision ${now.modRevision}` : ''}.`),
        h('h3', {}, 'What changed on the server'),
        diffView('loaded value against the server\'s', entry ? pretty(entry.value) : '', now ? pretty(now.value) : ''),
        h('h3', {}, 'Your edit against the server\'s value'),
        diffView('server value against your edit', now ? pretty(now.value) : '', pretty(mine)),
        h('button', { type: 'button', id: 'take-server', onclick: () => { if (now) openEditor(key, now); } }, 'Load the server\'s version')));
    }

    async function remove() {
      if (!entry || !confirm(`Delete ${key}?`)) return;
      try {
        await call('DELETE', keyPath(key), undefined, { 'If-Match': `"${entry.modRevision}"` }, signal);
        fill(editor, notice('ok', `Deleted ${key}.`));
        void list();
      } catch (err) {
        fill(result, notice('error', `Not deleted: ${describe(err)}`));
      }
    }
  }

  async function showHistory(key: string, box: HTMLElement) {
    try {
      const hist = await get<{ items: Entry[]; compactRevision: number }>(`/v1/history?key=${enc(key)}&limit=20`, signal);
      const items = hist.items;
      fill(box, h('h3', {}, 'History'),
        h('ol', { class: 'history' }, items.map((it, i) => {
          const older = items[i + 1];
          return h('li', {},
            h('details', { open: i === 0 },
              h('summary', {}, `revision ${it.modRevision}${it.deleted ? ' (deleted)' : `, version ${it.version}`}${it.by ? `, by ${it.by}` : ''}`),
              diffView(`changes in revision ${it.modRevision}`, older && !older.deleted ? pretty(older.value) : '', it.deleted ? '' : pretty(it.value))));
        })),
        hist.compactRevision ? h('p', { class: 'muted' }, `Versions before revision ${hist.compactRevision} are no longer held in memory.`) : null);
    } catch (e) {
      fill(box, notice('error', `History: ${describe(e)}`));
    }
  }

  async function showLease(id: number) {
    try {
      const l = await get<Lease>(`/v1/leases/${id}`, signal);
      fill(leases, h('h3', {}, `Lease ${l.id}`),
        h('p', {}, `TTL ${l.ttl}, expires ${ago(l.expiresAt)} (${new Date(l.expiresAt).toLocaleTimeString()})`),
        table(`Keys held by lease ${l.id}`, ['key'], l.keys.map((k) => [h('button', { type: 'button', class: 'link', onclick: () => void select(k) }, k)])));
    } catch (e) {
      fill(leases, notice('error', `Lease ${id}: ${describe(e)}`));
    }
  }

  go(prefix);
}
