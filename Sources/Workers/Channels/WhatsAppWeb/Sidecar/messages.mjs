// What Baileys' incoming messages and receipts say, as the sidecar's `message` and `receipt` events.

// Message parts that carry nothing worth recording: a message made only of these is skipped.
const SILENT_PARTS = new Set([
  'messageContextInfo', 'senderKeyDistributionMessage', 'fastRatchetKeySenderKeyDistributionMessage',
  'protocolMessage', 'reactionMessage', 'encReactionMessage', 'pollUpdateMessage', 'keepInChatMessage',
  'pinInChatMessage'
]);

// Wrappers Baileys' `normalizeMessageContent` unwraps; used only when the module does not export it.
const WRAPPERS = [
  'ephemeralMessage', 'viewOnceMessage', 'documentWithCaptionMessage', 'viewOnceMessageV2',
  'viewOnceMessageV2Extension', 'editedMessage'
];

// One `message` event for a Baileys `WAMessage`, or null when it carries nothing to record: status updates,
// reactions, protocol messages, and messages without content (a decryption failure: the real message may come
// later with the same id, and the agent dedupes on it).
export function toMessageEvent(msg, upsert, normalize = unwrapContent) {
  const key = msg?.key;
  if (!key?.id || !key.remoteJid || key.remoteJid === 'status@broadcast') return null;
  const content = normalize(msg.message);
  if (!hasContent(content)) return null;
  const { text, kind, quotedID, context } = readText(content);
  const mentions = Array.isArray(context?.mentionedJid) && context.mentionedJid.length > 0
    ? context.mentionedJid.filter((jid) => typeof jid === 'string')
    : undefined;
  return {
    type: 'message',
    upsert,
    id: key.id,
    chat: key.remoteJid,
    sender: key.participant || key.remoteJid,
    fromMe: Boolean(key.fromMe),
    pushName: msg.pushName || undefined,
    timestamp: toSeconds(msg.messageTimestamp),
    text,
    kind,
    quotedID,
    // Who a group message mentions, and whose message it quotes: what decides whether it addresses the owner.
    mentions,
    quotedSender: quotedID ? context?.participant || undefined : undefined
  };
}

function hasContent(content) {
  if (!content || typeof content !== 'object') return false;
  return Object.keys(content).some((part) => content[part] != null && !SILENT_PARTS.has(part));
}

// The text of a message and what kind of message held it.
export function readText(content) {
  if (typeof content.conversation === 'string' && content.conversation !== '') {
    return { text: content.conversation, kind: 'text' };
  }
  const extended = content.extendedTextMessage;
  if (extended && typeof extended.text === 'string') {
    const quotedID = quotedOf(extended);
    return { text: extended.text, kind: quotedID ? 'reply' : 'extended', quotedID, context: extended.contextInfo };
  }
  for (const part of ['imageMessage', 'videoMessage', 'documentMessage']) {
    const media = content[part];
    if (!media) continue;
    return media.caption
      ? { text: media.caption, kind: 'caption', quotedID: quotedOf(media), context: media.contextInfo }
      : { kind: 'other', quotedID: quotedOf(media), context: media.contextInfo };
  }
  const reply = replyText(content);
  if (reply) return { text: reply.text, kind: 'text', quotedID: quotedOf(reply.part), context: reply.part.contextInfo };
  return { kind: 'other' };
}

// The display text of a button, list or template reply.
function replyText(content) {
  const buttons = content.buttonsResponseMessage;
  if (buttons?.selectedDisplayText) return { text: buttons.selectedDisplayText, part: buttons };
  const list = content.listResponseMessage;
  const listText = list?.title || list?.singleSelectReply?.selectedRowId;
  if (listText) return { text: listText, part: list };
  const template = content.templateButtonReplyMessage;
  if (template?.selectedDisplayText) return { text: template.selectedDisplayText, part: template };
  return null;
}

function quotedOf(part) {
  return part?.contextInfo?.stanzaId || undefined;
}

// `messageTimestamp` is a number, a protobuf Long or a numeric string.
function toSeconds(value) {
  if (value == null) return undefined;
  const seconds = typeof value === 'object' && typeof value.toNumber === 'function' ? value.toNumber() : Number(value);
  return Number.isFinite(seconds) ? Math.trunc(seconds) : undefined;
}

// One `receipt` event for an entry of Baileys' `messages.update`, or null when it is not a status change.
export function toReceiptEvent({ key, update }) {
  if (typeof update?.status !== 'number' || !key?.id || !key.remoteJid) return null;
  return { type: 'receipt', id: key.id, chat: key.remoteJid, status: update.status };
}

export function unwrapContent(content) {
  let current = content ?? undefined;
  for (let depth = 0; depth < 5 && current; depth++) {
    const wrapper = WRAPPERS.map((name) => current[name]).find(Boolean);
    if (!wrapper) break;
    current = wrapper.message ?? undefined;
  }
  return current;
}
