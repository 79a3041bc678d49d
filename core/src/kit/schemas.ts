/**
 * Zod schemas for everything kitbridge says to Voximplant Kit and hears from it
 * (see shared/kit-protocol.md). Outgoing shapes are strict enough to catch our own
 * mistakes; incoming callbacks are parsed tolerantly: every vendor field is
 * optional unless the protocol needs it, and unknown keys are kept.
 */
import { z } from 'zod';

// ---------------------------------------------------------------- payload items

export const MEDIA_KINDS = ['photo', 'video', 'audio', 'document'] as const;
export type MediaKind = (typeof MEDIA_KINDS)[number];

export const MediaItemSchema = z.looseObject({
  type: z.enum(MEDIA_KINDS),
  file_name: z.string().optional(),
  file_url: z.string().optional(),
});

export const LocationItemSchema = z.looseObject({
  type: z.literal('location'),
  latitude: z.number(),
  longitude: z.number(),
  address: z.string().optional(),
});

export const ContactItemSchema = z.looseObject({
  type: z.literal('contact'),
  name: z.string().optional(),
  number: z.string().optional(),
  avatar: z.string().optional(),
});

export const PayloadItemSchema = z.discriminatedUnion('type', [
  MediaItemSchema,
  LocationItemSchema,
  ContactItemSchema,
]);
export type PayloadItem = z.infer<typeof PayloadItemSchema>;
export type MediaItem = z.infer<typeof MediaItemSchema>;
export type LocationItem = z.infer<typeof LocationItemSchema>;
export type ContactItem = z.infer<typeof ContactItemSchema>;

/** An item Kit sent that we do not know: kept as is, so nothing fails on a new vendor type. */
const UnknownItemSchema = z.looseObject({ type: z.string() });
const TolerantPayloadItemSchema = z.union([PayloadItemSchema, UnknownItemSchema]);

// ---------------------------------------------------------------- client_data

export const UtmSchema = z.object({
  source: z.string().optional(),
  campaign: z.string().optional(),
  content: z.string().optional(),
  medium: z.string().optional(),
  term: z.string().optional(),
});

export const PageSchema = z.object({ url: z.string().optional(), title: z.string().optional() });

export const LocationSchema = z.object({
  latitude: z.number().optional(),
  longitude: z.number().optional(),
  country: z.string().optional(),
  country_code: z.string().optional(),
  region: z.string().optional(),
  region_code: z.string().optional(),
  city: z.string().optional(),
  ip_address: z.string().optional(),
});

export const DeviceSchema = z.object({
  type: z.string().optional(),
  model: z.string().optional(),
  user_agent: z.string().optional(),
});

export const ClientDataSchema = z.object({
  client_id: z.string().min(1),
  client_phone: z.string().optional(),
  client_avatar: z.string().optional(),
  client_display_name: z.string().optional(),
  client_email: z.string().optional(),
  client_language: z.string().optional(),
  utm: UtmSchema.optional(),
  page: PageSchema.optional(),
  location: LocationSchema.optional(),
  device: DeviceSchema.optional(),
});
export type ClientData = z.infer<typeof ClientDataSchema>;

// ---------------------------------------------------------------- customer event (kitbridge -> Kit)

export const OutgoingMessageSchema = z.object({
  message_id: z.string().min(1),
  text: z.string().optional(),
  payload: z.array(PayloadItemSchema).optional(),
});

export const CustomerEventSchema = z.object({
  client_data: ClientDataSchema,
  event_id: z.string().min(1),
  event_type: z.literal('send_message'),
  event_data: z.object({ message: OutgoingMessageSchema }),
});
export type CustomerEvent = z.infer<typeof CustomerEventSchema>;

// ---------------------------------------------------------------- login / refresh / errors

export const TokenPairSchema = z.looseObject({
  access_token: z.string().min(1),
  refresh_token: z.string().min(1),
});
export const LoginResponseSchema = z.looseObject({ success: z.literal(true), result: TokenPairSchema });
export type TokenPair = z.infer<typeof TokenPairSchema>;

export const ErrorResponseSchema = z.looseObject({
  success: z.literal(false),
  result: z
    .looseObject({ error: z.string().optional(), code: z.union([z.number(), z.string()]).optional() })
    .optional(),
});
export type ErrorResponse = z.infer<typeof ErrorResponseSchema>;

export const SendResponseSchema = z.looseObject({ success: z.literal(true) });

// ---------------------------------------------------------------- callbacks (Kit -> kitbridge)

export const SenderDataSchema = z.looseObject({
  sender_id: z.union([z.number(), z.string()]).optional(),
  sender_username: z.string().nullish(),
  sender_display_name: z.string().nullish(),
  sender_avatar: z.string().nullish(),
  sender_email: z.string().nullish(),
  sender_type: z.string().nullish(),
  is_bot: z.boolean().nullish(),
});
export type SenderData = z.infer<typeof SenderDataSchema>;

const CallbackClientSchema = z.looseObject({ client_id: z.string().min(1) });

export const AgentMessageCallbackSchema = z.looseObject({
  client_data: CallbackClientSchema,
  event_id: z.string().min(1),
  event_type: z.literal('send_message'),
  event_data: z.looseObject({
    sender_data: SenderDataSchema.nullish(),
    message: z.looseObject({
      message_id: z.union([z.string(), z.number()]).nullish(),
      text: z.string().nullish(),
      payload: z.array(TolerantPayloadItemSchema).nullish(),
    }),
  }),
});
export type AgentMessageCallback = z.infer<typeof AgentMessageCallbackSchema>;

export const CLOSE_REASONS = [
  'CLOSED_BY_AGENT',
  'CLOSED_BY_BOT',
  'CLOSED_BY_CLIENT_TIMEOUT',
  'CLOSED_BY_UNKNOWN_REASON',
] as const;

export const CloseConversationCallbackSchema = z.looseObject({
  client_data: CallbackClientSchema,
  event_id: z.string().min(1),
  event_type: z.literal('close_conversation'),
  event_data: z
    .looseObject({
      // A reason we do not know is kept as text rather than refused.
      close_reason: z.string().nullish(),
      sender_data: SenderDataSchema.nullish(),
    })
    .nullish(),
});
export type CloseConversationCallback = z.infer<typeof CloseConversationCallbackSchema>;

/** Any other event type: acknowledged and logged, never delivered. */
export const UnknownCallbackSchema = z.looseObject({
  event_id: z.string().min(1),
  event_type: z.string(),
  client_data: z.looseObject({ client_id: z.string().optional() }).nullish(),
});

export type KitCallback =
  | { kind: 'send_message'; event: AgentMessageCallback }
  | { kind: 'close_conversation'; event: CloseConversationCallback }
  | { kind: 'unknown'; event: z.infer<typeof UnknownCallbackSchema> };

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Parses a callback body that is already JSON. Known event types must match their
 * schema (else a 400 with the reason); an unknown type is reported as such.
 */
export function parseCallback(body: unknown): ParseResult<KitCallback> {
  const base = UnknownCallbackSchema.safeParse(body);
  if (!base.success) return { ok: false, error: describeZodError(base.error) };
  if (base.data.event_type === 'send_message') {
    const r = AgentMessageCallbackSchema.safeParse(body);
    return r.success
      ? { ok: true, value: { kind: 'send_message', event: r.data } }
      : { ok: false, error: describeZodError(r.error) };
  }
  if (base.data.event_type === 'close_conversation') {
    const r = CloseConversationCallbackSchema.safeParse(body);
    return r.success
      ? { ok: true, value: { kind: 'close_conversation', event: r.data } }
      : { ok: false, error: describeZodError(r.error) };
  }
  return { ok: true, value: { kind: 'unknown', event: base.data } };
}

/** "event_data.message: expected object, received undefined" — short, path first, no values echoed. */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}
