/**
 * Structured logs (pino). Secrets are removed twice: known field names are
 * redacted, and every secret value registered with {@link createLogger} is
 * replaced wherever it appears in the final line (an error message quoting a
 * URL with a bot token in it, say).
 */
import { type LevelWithSilent, type Logger as PinoLogger, pino } from 'pino';

export type Logger = PinoLogger;

const REDACT_PATHS = [
  '*.token',
  '*.access_token',
  '*.refresh_token',
  '*.authorization',
  '*.Authorization',
  'headers.authorization',
  'req.headers.authorization',
  '*.salt',
  '*.secret',
  '*.password',
];

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Values that must never be printed (tokens, salts, secrets). Empty strings are ignored. */
  secrets?: readonly (string | undefined)[];
  /** Where lines go; default stdout. */
  destination?: NodeJS.WritableStream;
}

/** Longest string a log field keeps when it quotes a request (an event id, a header). */
export const QUOTE_MAX = 200;
/** Longest string any log field keeps, whatever its source: the safety net behind {@link quote}. */
const FIELD_MAX = 2_000;

/**
 * A value from a request, cut for a log line: anyone can send a 900 KB event id,
 * and a log line must not grow with it. Keeps the start and says how long it was.
 */
export function quote(value: unknown, max = QUOTE_MAX): string {
  const s = typeof value === 'string' ? value : String(value);
  return s.length <= max ? s : `${s.slice(0, max)}…[${s.length} chars]`;
}

/** Cuts every long string of a log object, three levels deep (errors' messages included). */
function capFields(obj: Record<string, unknown>, depth = 0): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const k in obj) {
    const v = obj[k];
    let capped: unknown = v;
    if (typeof v === 'string' && v.length > FIELD_MAX) capped = quote(v, FIELD_MAX);
    else if (depth < 3 && v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Error))
      capped = capFields(v as Record<string, unknown>, depth + 1);
    if (capped !== v) {
      out ??= { ...obj };
      out[k] = capped;
    }
  }
  return out ?? obj;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const scrub = makeScrubber(opts.secrets ?? []);
  return pino(
    {
      level: opts.level ?? 'info',
      base: undefined,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { log: (obj) => capFields(obj) },
      hooks: { streamWrite: scrub, logMethod: capMessage },
    },
    (opts.destination ?? process.stdout) as pino.DestinationStream,
  );
}

/** The message string of a log call is cut like a field. */
function capMessage(
  this: PinoLogger,
  args: Parameters<PinoLogger['info']>,
  method: (...a: unknown[]) => void,
): void {
  const a = args as unknown[];
  for (let i = 0; i < a.length; i++) {
    if (typeof a[i] === 'string' && (a[i] as string).length > FIELD_MAX) a[i] = quote(a[i], FIELD_MAX);
  }
  method.apply(this, a);
}

/** Returns a function that replaces every listed secret (and its URL-encoded form) by `[redacted]`. */
export function makeScrubber(secrets: readonly (string | undefined)[]): (s: string) => string {
  const values = new Set<string>();
  for (const s of secrets) {
    if (!s || s.length < 4) continue;
    values.add(s);
    values.add(encodeURIComponent(s));
    values.add(JSON.stringify(s).slice(1, -1));
  }
  if (values.size === 0) return (s) => s;
  const list = [...values].sort((a, b) => b.length - a.length);
  return (s) => {
    let out = s;
    for (const v of list) if (out.includes(v)) out = out.split(v).join('[redacted]');
    return out;
  };
}

/** A logger that prints nothing: the default for library use and tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
