// The console's shell: hash routing (#/config, ...) so that the Go side
// only serves files under /ui/, the login form, and one page at a time,
// each given an AbortSignal that ends its polls and watches when the
// reader moves on.
import './style.css';
import { h, fill } from './dom';
import { token, setToken, unauthorized } from './api';
import { overview } from './pages/overview';
import { configPage } from './pages/config';
import { servicesPage } from './pages/services';
import { electionsPage } from './pages/elections';
import { scalersPage } from './pages/scalers';
import { gatewayPage } from './pages/gateway';

export type Page = (root: HTMLElement, signal: AbortSignal, arg: string) => void;

const pages: Record<string, [string, Page]> = {
  overview: ['Overview', overview],
  config: ['Config', configPage],
  services: ['Services', servicesPage],
  elections: ['Elections', electionsPage],
  scalers: ['Scalers', scalersPage],
  gateway: ['Gateway', gatewayPage],
};

const main = document.getElementById('main')!;
const session = document.getElementById('session')!;
let current: AbortController | null = null;

function route() {
  current?.abort();
  current = new AbortController();
  const [, name = 'overview', ...rest] = location.hash.replace(/^#/, '').split('/');
  const [title, page] = pages[name] ?? pages.overview;
  document.title = `${title} · Steward console`;
  for (const a of document.querySelectorAll<HTMLAnchorElement>('#nav a')) {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const root = h('section', { 'aria-labelledby': 'page-title' });
  fill(main, h('h1', { id: 'page-title' }, title), root);
  page(root, current.signal, decodeURIComponent(rest.join('/')));
}

function renderSession() {
  if (token()) {
    fill(session, h('span', { class: 'muted' }, 'token set'), ' ',
      h('button', { type: 'button', id: 'logout', onclick: () => { setToken(''); renderSession(); route(); } }, 'Sign out'));
  } else {
    fill(session, h('button', { type: 'button', id: 'login-open', onclick: () => showLogin('') }, 'Sign in'));
  }
}

// showLogin replaces the page with the login form; the token is kept in
// session storage only (gone when the tab closes).
function showLogin(why: string) {
  current?.abort();
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'current-password', required: true, 'aria-describedby': 'token-help' });
  const form = h('form', { class: 'card login', id: 'login' },
    h('h2', {}, 'Sign in'),
    why ? h('p', { role: 'alert', class: 'notice error' }, why) : null,
    h('label', { for: 'token' }, 'Bearer token'),
    input,
    h('p', { id: 'token-help', class: 'muted' }, 'A Steward token (steward dev prints the root token when STEWARD_AUTH=on). It stays in this tab\'s session storage.'),
    h('button', { type: 'submit', id: 'login-submit' }, 'Sign in'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    renderSession();
    route();
  });
  fill(main, h('h1', { id: 'page-title' }, 'Sign in'), form);
  input.focus();
}

window.addEventListener(unauthorized, () => {
  if (document.getElementById('login')) return;
  showLogin(token() ? 'The token was refused (401): sign in with another.' : 'This Steward requires a token (401).');
});
window.addEventListener('hashchange', () => { route(); main.focus(); });
renderSession();
route();
