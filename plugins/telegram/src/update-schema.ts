/**
 * The shape of a Telegram update as far as kitbridge relies on it. grammY's
 * types are a promise about what Telegram sends, not a check: a webhook body
 * with the right secret but a number where a string belongs must not be
 * half-forwarded to Kit. Unknown fields and update kinds pass (Telegram adds
 * them all the time); only what {@link mapUpdate} reads is checked.
 */
import type { Update } from 'grammy/types';
import { z } from 'zod';

const id = z.number().int().safe();
const str = z.string();
const size = z.number().int().nonnegative().safe().optional();

const User = z.looseObject({
  id,
  is_bot: z.boolean().optional(),
  first_name: str.optional(),
  last_name: str.optional(),
  username: str.optional(),
  language_code: str.optional(),
});

const Chat = z.looseObject({
  id,
  type: str,
  title: str.optional(),
});

const FileBase = { file_id: str, file_unique_id: str, file_size: size };
const NamedFile = z.looseObject({ ...FileBase, file_name: str.optional(), mime_type: str.optional() });
const PhotoSize = z.looseObject({ ...FileBase, width: z.number(), height: z.number() });
const Location = z.looseObject({ latitude: z.number(), longitude: z.number() });

const Message = z.looseObject({
  message_id: id,
  edit_date: z.number().optional(),
  chat: Chat,
  from: User.optional(),
  text: str.optional(),
  caption: str.optional(),
  photo: z.array(PhotoSize).optional(),
  animation: NamedFile.optional(),
  video: NamedFile.optional(),
  video_note: z.looseObject(FileBase).optional(),
  voice: NamedFile.optional(),
  audio: NamedFile.optional(),
  document: NamedFile.optional(),
  sticker: z
    .looseObject({
      ...FileBase,
      is_video: z.boolean().optional(),
      is_animated: z.boolean().optional(),
      emoji: str.optional(),
    })
    .optional(),
  location: Location.optional(),
  venue: z.looseObject({ location: Location, title: str.optional(), address: str.optional() }).optional(),
  contact: z
    .looseObject({
      phone_number: str,
      first_name: str.optional(),
      last_name: str.optional(),
      user_id: id.optional(),
    })
    .optional(),
});

const UpdateSchema = z.looseObject({
  update_id: id,
  message: Message.optional(),
  edited_message: Message.optional(),
});

/**
 * The update when the fields kitbridge reads have the types Telegram documents;
 * otherwise a short, secret-free description of the first problem.
 */
export function checkUpdate(value: unknown): { ok: true; update: Update } | { ok: false; problem: string } {
  const r = UpdateSchema.safeParse(value);
  if (r.success) return { ok: true, update: value as Update };
  const issue = r.error.issues[0];
  return { ok: false, problem: `${issue?.path.join('.') || 'update'}: ${issue?.message ?? 'invalid'}` };
}
