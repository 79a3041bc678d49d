/**
 * The operator page's script and stylesheet, served as files (the CSP allows
 * no inline script or style). Kept as strings so the package needs no asset
 * copying and no front-end build. The page works without the script; it only
 * refreshes the live panel and asks before a drop.
 */

export const ADMIN_JS = `'use strict';
// Reloads the live panel every 2 s (a retried item is seen leaving), and asks before a drop.
(() => {
  const panel = document.getElementById('panel');
  if (!panel) return;
  let busy = false;
  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const r = await fetch('/admin/panel', { credentials: 'same-origin', cache: 'no-store' });
      // Logged out or the session expired: show the login form.
      if (r.status === 401) location.assign('/admin');
      // The server escapes every value in the fragment, and the CSP runs no inline script.
      else if (r.ok) panel.innerHTML = await r.text();
    } catch {
      // The bridge is restarting or the network hiccuped: the next tick tries again.
    } finally {
      busy = false;
    }
  }
  setInterval(refresh, 2000);
  document.addEventListener('submit', (e) => {
    const question = e.target instanceof HTMLFormElement ? e.target.dataset.confirm : undefined;
    if (question && !window.confirm(question)) e.preventDefault();
  });
})();
`;

export const ADMIN_CSS = `body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5rem 2rem; color: #1b1b1b; }
header { display: flex; align-items: center; justify-content: space-between; }
h1 { font-size: 1.4rem; }
h2 { font-size: 1.1rem; margin-top: 1.5rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; }
[data-state="ready"], [data-state="connected"] { color: #1a7f37; }
[data-state="not-ready"], [data-state="failed"], [data-state="disconnected"] { color: #b42318; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
td.reason { max-width: 24rem; overflow-wrap: anywhere; }
td.excerpt code { display: block; max-width: 28rem; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 12px; }
td.key { overflow-wrap: anywhere; max-width: 12rem; }
td.actions { white-space: nowrap; }
td.actions form { display: inline; }
form.bulk { margin-bottom: 0.5rem; }
.updated { color: #666; font-size: 12px; }
`;
