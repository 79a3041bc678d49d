/**
 * The operator page's HTML, rendered on the server. Every interpolated value
 * goes through {@link html}, which escapes it: reasons, client ids and payload
 * excerpts come from customers, platforms and Kit. Nothing here is inline
 * script or style (the CSP forbids both); the JS and CSS are served as files.
 */
import { formatAge } from '../text/age.js';
import type { AdminView, DeadLetter } from './view.js';

/** Markup that is already safe; only {@link html} makes it. */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

/** A template whose values are escaped, except nested `html` results; arrays are joined, nullish and false vanish. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += part(values[i]) + strings[i + 1]!;
  return new Html(out);
}

function part(v: unknown): string {
  if (v instanceof Html) return v.text;
  if (Array.isArray(v)) return v.map(part).join('');
  if (v === undefined || v === null || v === false) return '';
  return escapeHtml(String(v));
}

function layout(title: string, body: Html, assets: boolean): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
${
  assets
    ? html`<link rel="stylesheet" href="/admin/admin.css">
<script src="/admin/admin.js" defer></script>`
    : ''
}
</head>
<body>
${body}
</body>
</html>
`.text;
}

/** The login form. `refused`: the last token sent was wrong (it is not shown back). */
export function loginPage(refused: boolean): string {
  return layout(
    'kitbridge: log in',
    html`<main>
<h1>kitbridge operator page</h1>
${refused ? html`<p id="refused" role="alert">That token is not the one in KITBRIDGE_ADMIN_TOKEN.</p>` : ''}
<form method="post" action="/admin/login">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>
</main>`,
    false,
  );
}

export function dashboardPage(view: AdminView): string {
  return layout(
    'kitbridge: operator page',
    html`<header>
<h1>kitbridge</h1>
<form method="post" action="/admin/logout"><button type="submit">Log out</button></form>
</header>
<main id="panel">${panel(view)}</main>`,
    true,
  );
}

/** The live part of the page; admin.js fetches it again every few seconds. */
export function panel(view: AdminView): Html {
  const { status } = view;
  const c = status.connector;
  const connector = [c.state, c.code ? ` (${c.code})` : '', c.reason ? `: ${c.reason}` : ''].join('');
  return html`<section id="connection">
<h2>Connection</h2>
<dl>
<dt>Ready</dt><dd id="ready" data-state="${status.ready ? 'ready' : 'not-ready'}">${status.ready ? 'yes' : 'no'}${status.stopping ? ' (stopping)' : ''}</dd>
<dt>Kit login</dt><dd id="kit">${status.kit ? 'accepted' : 'not yet'}</dd>
<dt>Connector</dt><dd id="connector" data-state="${c.state}">${connector}</dd>
</dl>
</section>
<section id="backlog">
<h2>Backlog</h2>
<table>
<thead><tr><th>Leg</th><th>Pending</th><th>Clients</th><th>Oldest pending</th><th>Dead</th></tr></thead>
<tbody>
${view.legs.map(
  (s) => html`<tr id="leg-${s.leg}">
<th scope="row">${s.leg}</th><td class="pending">${s.pending}</td><td>${s.clients}</td><td>${s.oldestPendingAt !== undefined && s.pending > 0 ? formatAge(view.now - s.oldestPendingAt) : '-'}</td><td class="dead">${s.dead}</td>
</tr>
`,
)}</tbody>
</table>
</section>
<section id="dead-letters">
<h2>Dead letters (${view.deadTotal})</h2>
${view.dead.length ? deadTable(view) : html`<p class="empty">No dead letters.</p>`}
</section>
<p class="updated">Read at ${new Date(view.now).toISOString()}</p>
`;
}

function deadTable(view: AdminView): Html {
  return html`<form method="post" action="/admin/retry" class="bulk"><input type="hidden" name="id" value="all-dead"><button type="submit">Retry all ${view.deadTotal}</button></form>
${view.deadTotal > view.dead.length ? html`<p>The first ${view.dead.length} are shown; <code>kitbridge outbox list --dead</code> lists all.</p>` : ''}
<table>
<thead><tr><th>Id</th><th>Leg</th><th>Client</th><th>Key</th><th>Attempts</th><th>Age</th><th>Reason</th><th>Payload</th><th></th></tr></thead>
<tbody>
${view.dead.map((d) => deadRow(d, view.now))}</tbody>
</table>`;
}

function deadRow(d: DeadLetter, now: number): Html {
  return html`<tr id="dead-${d.id}" data-id="${d.id}">
<td>#${d.id}</td><td>${d.leg}</td><td>${d.clientId}</td><td class="key">${d.key}</td><td>${d.attempts}</td><td>${formatAge(now - d.createdAt)}</td>
<td class="reason">${d.reason}</td><td class="excerpt"><code>${d.excerpt}</code></td>
<td class="actions">
<form method="post" action="/admin/retry"><input type="hidden" name="id" value="${d.id}"><button type="submit" name="retry">Retry</button></form>
<form method="post" action="/admin/drop" data-confirm="Drop #${d.id} for good?"><input type="hidden" name="id" value="${d.id}"><button type="submit" name="drop">Drop</button></form>
</td>
</tr>
`;
}
