/**
 * Slack's text format both ways.
 *
 * In: a message's `text` is mrkdwn with Slack's escaping (`&amp;`, `&lt;`,
 * `&gt;`) and control sequences in angle brackets (`<@U123>`, `<#C123|general>`,
 * `<https://x|label>`, `<!here>`, `<!date^…|fallback>`). Kit gets plain text:
 * mentions become `@name` / `#channel`, links `label (url)`, `*bold*` `_italic_`
 * `~strike~` and code fences lose their markers, entities are decoded last.
 * Names come from the sequence itself (`<@U1|ann>`, `<#C1|general>`) or from
 * what the connector already knows (`names`), never from an API call: this
 * runs before Slack gets its acknowledgement.
 *
 * Out: agent text is escaped for Slack (`&`, `<`, `>`), so nothing an agent
 * types becomes a mention, a link with another target or a broadcast.
 */

export interface NameLookup {
  /** A user's display name, when known (the bot user, customers looked up before). */
  user(id: string): string | undefined;
  /** A channel's name, when known. */
  channel?(id: string): string | undefined;
}

const noNames: NameLookup = { user: () => undefined };

/** Slack mrkdwn -> plain text for Kit. */
export function mrkdwnToPlain(text: string, names: NameLookup = noNames): string {
  // Code first: what is inside `code` or ```fences``` is kept as written (entities aside).
  const parts = splitCode(text);
  return parts
    .map((p) => (p.code ? decodeEntities(p.text) : controls(stripFormatting(p.text), names)))
    .join('');
}

/** Agent text -> Slack text: `&`, `<` and `>` escaped as Slack asks. */
export function escapeForSlack(text: string): string {
  return text.replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'));
}

/** The inverse of {@link escapeForSlack} (tests, and what Slack hands back). */
export function decodeEntities(text: string): string {
  return text.replace(/&(amp|lt|gt);/g, (_m, e: string) => (e === 'amp' ? '&' : e === 'lt' ? '<' : '>'));
}

/**
 * Control sequences and entities in one pass, so that what a sequence becomes
 * (a looked-up name) is never decoded again, and `&amp;lt;` stays `&lt;`.
 */
function controls(text: string, names: NameLookup): string {
  return text.replace(/<([^<>\n]{1,2000})>|&(amp|lt|gt);/g, (whole, inner: string | undefined) => {
    if (inner === undefined) return decodeEntities(whole);
    const bar = inner.indexOf('|');
    const target = decodeEntities(bar === -1 ? inner : inner.slice(0, bar));
    const label = bar === -1 ? '' : decodeEntities(inner.slice(bar + 1));
    switch (target[0]) {
      case '@': {
        const id = target.slice(1);
        return `@${label || names.user(id) || id}`;
      }
      case '#': {
        const id = target.slice(1);
        return `#${label || names.channel?.(id) || id}`;
      }
      case '!':
        return special(target.slice(1), label);
      default:
        if (/^(https?|mailto|tel|ftp|slack):/i.test(target)) return link(target, label);
        // Not a control sequence Slack writes (Slack escapes a literal `<` as &lt;): leave it.
        return decodeEntities(whole);
    }
  });
}

function special(command: string, label: string): string {
  const [name, ...args] = command.split('^');
  switch (name) {
    case 'here':
    case 'channel':
    case 'everyone':
      return `@${name}`;
    case 'subteam':
      return label ? (label.startsWith('@') ? label : `@${label}`) : `@${args[0] ?? 'group'}`;
    case 'date':
      // <!date^1392734382^{date_short}|Feb 18, 2014>: the fallback is the readable part.
      return (
        label || (args[0] && /^\d+$/.test(args[0]) ? new Date(Number(args[0]) * 1000).toISOString() : '')
      );
    default:
      return label || `@${name}`;
  }
}

function link(target: string, text: string): string {
  if (/^(mailto|tel):/i.test(target)) return text || target.slice(target.indexOf(':') + 1);
  // Slack writes a bare link as <https://x> or <https://x|x>; only a real label is worth keeping.
  if (!text || text === target || target.replace(/^https?:\/\//i, '') === text) return target;
  return `${text} (${target})`;
}

/** `*bold*`, `_italic_`, `~strike~` markers at word edges, as Slack reads them. */
function stripFormatting(text: string): string {
  let out = text;
  for (const mark of ['*', '_', '~']) {
    const m = mark === '*' ? '\\*' : mark;
    const re = new RegExp(`(^|[\\s([{"'“‘])${m}(?=\\S)([^\\n]*?\\S)${m}(?=$|[\\s)\\]}.,!?:;"'”’])`, 'g');
    // Twice: adjacent spans share the separator between them.
    out = out.replace(re, '$1$2').replace(re, '$1$2');
  }
  return out;
}

/** Splits into code (inline and fenced, markers dropped) and the rest. */
function splitCode(text: string): { text: string; code: boolean }[] {
  const out: { text: string; code: boolean }[] = [];
  const re = /```([\s\S]*?)```|`([^`\n]+)`/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) out.push({ text: text.slice(last, m.index), code: false });
    const inner = m[1] ?? m[2] ?? '';
    out.push({ text: m[1] !== undefined ? inner.replace(/^\n/, '').replace(/\n$/, '') : inner, code: true });
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last), code: false });
  return out;
}
