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

export function createLogger(opts: LoggerOptions = {}): Logger {
  const scrub = makeScrubber(opts.secrets ?? []);
  return pino(
    {
      level: opts.level ?? 'info',
      base: undefined,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      hooks: { streamWrite: scrub },
    },
    (opts.destination ?? process.stdout) as pino.DestinationStream,
  );
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
