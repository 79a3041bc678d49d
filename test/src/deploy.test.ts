/**
 * deploy/: the Grafana dashboard and the Prometheus alerts name only metrics
 * kitbridge exports, with labels those metrics have; promtool checks the rules
 * and runs their unit tests where it is installed.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Metrics } from '@kitbridge/core';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = join(import.meta.dirname, '..', '..');
const alertsPath = join(root, 'deploy/prometheus/alerts.yml');
const alertTestsPath = join(root, 'deploy/prometheus/alerts.test.yml');
const dashboardPath = join(root, 'deploy/grafana/kitbridge.json');

/** Labels Prometheus adds to every scraped series, and the histogram's bucket label. */
const TARGET_LABELS = ['job', 'instance', 'le'];

/** Every series name kitbridge exports (histogram parts included), with its label names. */
async function exported(): Promise<Map<string, Set<string>>> {
  const m = new Metrics({
    platform: 'telegram',
    stats: async () => [{ leg: 'inbound', pending: 1, dead: 0, clients: 1, oldestPendingAt: Date.now() }],
    state: () => 'connected',
    ready: () => true,
    kitLoggedIn: () => true,
  });
  m.media.answered(200);
  const names = new Map<string, Set<string>>();
  const { body } = await m.text();
  for (const line of body.split('\n')) {
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (!sample) continue;
    const labels = names.get(sample[1]!) ?? new Set(TARGET_LABELS);
    for (const pair of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(pair[1]!);
    names.set(sample[1]!, labels);
  }
  return names;
}

/** Every PromQL expression of the alerts file. */
function alertExprs(): { alert: string; expr: string }[] {
  const doc = parse(readFileSync(alertsPath, 'utf8')) as {
    groups: { rules: { alert: string; expr: string }[] }[];
  };
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ alert: r.alert, expr: String(r.expr) })));
}

/** Every query of the dashboard: panel targets and template variables. */
function dashboardExprs(): { where: string; expr: string }[] {
  const d = JSON.parse(readFileSync(dashboardPath, 'utf8')) as {
    panels: { title: string; type: string; targets?: { expr: string }[] }[];
    templating: { list: { name: string; definition?: string }[] };
  };
  const out: { where: string; expr: string }[] = [];
  for (const p of d.panels) {
    if (p.type === 'row') continue;
    expect(p.targets?.length, `panel "${p.title}" has a query`).toBeGreaterThan(0);
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: t.expr });
  }
  for (const v of d.templating.list)
    if (v.definition) out.push({ where: `variable $${v.name}`, expr: v.definition });
  return out;
}

/** Metric selectors `name{labels}` or bare `name` in an expression (ours and the process's). */
function selectors(expr: string): { name: string; labels: string[] }[] {
  const out: { name: string; labels: string[] }[] = [];
  const re = /\b((?:kitbridge|process|nodejs)_[a-zA-Z0-9_:]*)\s*(\{[^}]*\})?/g;
  for (const m of expr.matchAll(re)) {
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((x) => x[1]!);
    out.push({ name: m[1]!, labels });
  }
  return out;
}

/** Labels named in `by (...)`, `without (...)` and `on (...)`. */
function groupingLabels(expr: string): string[] {
  return [...expr.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)].flatMap((m) =>
    m[1]!
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

describe('deploy: dashboards and alerts', () => {
  it('the alerts cover the backlog, the oldest age, dead letters, readiness and Kit logins', () => {
    expect(alertExprs().map((a) => a.alert)).toEqual([
      'KitbridgeBacklogGrowing',
      'KitbridgeOldestPendingTooOld',
      'KitbridgeDeadLetters',
      'KitbridgeNotReady',
      'KitbridgeKitLoginFailing',
    ]);
  });

  it('every metric the alerts and the dashboard name is one kitbridge exports, with labels it has', async () => {
    const names = await exported();
    const all = [
      ...alertExprs().map((a) => ({ where: `alert ${a.alert}`, expr: a.expr })),
      ...dashboardExprs(),
    ];
    expect(all.length).toBeGreaterThan(20);
    for (const { where, expr } of all) {
      const used = selectors(expr);
      expect(used.length, `${where} names a metric: ${expr}`).toBeGreaterThan(0);
      const known = new Set<string>();
      for (const { name, labels } of used) {
        expect(names.has(name), `${where}: ${name} is exported`).toBe(true);
        for (const l of names.get(name) ?? []) known.add(l);
        for (const l of labels)
          expect(names.get(name)?.has(l), `${where}: ${name} has label ${l}`).toBe(true);
      }
      for (const l of groupingLabels(expr))
        expect(known.has(l), `${where}: some metric has label ${l}`).toBe(true);
    }
  });

  it('the dashboard shows flow per leg, backlog and oldest age, dead letters, latency quantiles, 429s and state', () => {
    const exprs = dashboardExprs()
      .map((e) => e.expr)
      .join('\n');
    for (const name of [
      'kitbridge_messages_received_total',
      'kitbridge_messages_delivered_total',
      'kitbridge_outbox_pending',
      'kitbridge_outbox_oldest_pending_age_seconds',
      'kitbridge_dead_letters_total',
      'kitbridge_delivery_latency_seconds_bucket',
      'kitbridge_platform_rate_limits_total',
      'kitbridge_connector_state',
    ])
      expect(exprs).toContain(name);
    expect(exprs).toMatch(/histogram_quantile\(0\.99,/);
  });
});

const promtool = await promisify(execFile)('sh', ['-c', 'command -v promtool'])
  .then((r) => r.stdout.trim() || undefined)
  .catch(() => undefined);

describe('deploy: promtool', () => {
  // Skipped, saying why, where promtool is not installed (it comes with the prometheus package).
  it.skipIf(!promtool)(
    `promtool check rules passes and the alerts' unit tests pass${promtool ? '' : ' (skipped: promtool is not on PATH)'}`,
    async () => {
      const run = promisify(execFile);
      const check = await run(promtool!, ['check', 'rules', alertsPath]);
      expect(check.stdout).toMatch(/SUCCESS: 5 rules found/);
      const tests = await run(promtool!, ['test', 'rules', alertTestsPath]);
      expect(tests.stdout).toMatch(/SUCCESS/);
    },
  );
});
