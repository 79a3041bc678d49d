/**
 * `kitbridge demo [platform]`. The demo and its fakes are the package
 * @kitbridge/demo, an optional peer: an operator's install carries no fake
 * servers, and the demo says how to get it when it is missing.
 */
import { loadPlatform } from './platforms.js';

export const DEMO_MISSING =
  'the demo is the package @kitbridge/demo, which is not installed: npm install @kitbridge/demo, then run kitbridge demo again';

export async function demo(platform: string, print: (s: string) => void): Promise<number> {
  let mod: typeof import('@kitbridge/demo');
  try {
    mod = await import('@kitbridge/demo');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    if (!/@kitbridge\/demo/.test((err as Error).message)) throw err;
    throw new Error(DEMO_MISSING);
  }
  const scenario = mod.DEMOS[platform];
  if (!scenario) throw new Error(`no demo for "${platform}"`);
  return mod.runDemo(platform, await loadPlatform(platform), scenario, print);
}
