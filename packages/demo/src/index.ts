import type { DemoScenario } from './demo.js';
import { discordDemo } from './discord-demo.js';
import { slackDemo } from './slack-demo.js';
import { telegramDemo } from './telegram-demo.js';

export { type DemoContext, type DemoScenario, runDemo } from './demo.js';

/** Every platform's demo scenario, by the name `kitbridge demo` takes. */
export const DEMOS: Record<string, () => Promise<DemoScenario>> = {
  telegram: telegramDemo,
  discord: discordDemo,
  slack: slackDemo,
};
