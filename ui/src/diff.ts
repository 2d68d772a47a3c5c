import { h } from './dom';

export type Op = [' ' | '-' | '+', string];

// diffLines is a longest-common-subsequence diff of two texts by line:
// config values are small, and O(n·m) keeps it short and exact.
export function diffLines(a: string, b: string): Op[] {
  const lines = (t: string) => (t === '' ? [] : t.split('\n'));
  const x = lines(a), y = lines(b);
  const n = x.length, m = y.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out: Op[] = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push([' ', x[i]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(['-', x[i++]]);
    else out.push(['+', y[j++]]);
  }
  while (i < n) out.push(['-', x[i++]]);
  while (j < m) out.push(['+', y[j++]]);
  return out;
}

// diffView shows a diff with the change marked by a sign as well as by
// colour, so that it reads without colour too.
export function diffView(label: string, a: string, b: string): HTMLElement {
  return h('pre', { class: 'diff', 'aria-label': label },
    diffLines(a, b).map(([op, text]) => h('span', { class: op === '+' ? 'add' : op === '-' ? 'del' : 'same' }, `${op} ${text}`)));
}
