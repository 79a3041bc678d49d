/** The platforms `kitbridge run` knows, loaded only when asked for. */
import type { ConnectorPlugin } from '@kitbridge/core';

const PLATFORMS: Record<string, () => Promise<ConnectorPlugin<unknown>>> = {
  telegram: async () => (await import('@kitbridge/telegram')).telegramPlugin as ConnectorPlugin<unknown>,
  discord: async () => (await import('@kitbridge/discord')).discordPlugin as ConnectorPlugin<unknown>,
  slack: async () => (await import('@kitbridge/slack')).slackPlugin as ConnectorPlugin<unknown>,
};

export const PLATFORM_NAMES = Object.keys(PLATFORMS);

export async function loadPlatform(name: string | undefined): Promise<ConnectorPlugin<unknown>> {
  const load = name ? PLATFORMS[name] : undefined;
  if (!load) {
    throw new Error(
      `${name ? `unknown platform "${name}"` : 'no platform given'}; choose one of: ${PLATFORM_NAMES.join(', ')}`,
    );
  }
  return load();
}
