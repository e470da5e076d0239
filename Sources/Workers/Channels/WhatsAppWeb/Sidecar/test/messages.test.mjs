import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toMessageEvent, unwrapContent } from '../sidecar.mjs';
import { settle, startSidecar } from './harness.mjs';

const CHAT = '15550002222@s.whatsapp.net';
const msg = (id, message, extra = {}) => ({
  key: { remoteJid: CHAT, fromMe: false, id },
  message,
  pushName: 'Bob',
  messageTimestamp: 1700000000,
  ...extra
});

test('notify and append both become message events with text, kind and quotedID', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  sock.upsert('notify', [
    msg('M1', { conversation: 'hello' }),
    msg('M2', { extendedTextMessage: { text: 'see https://x.y' } })
  ]);
  sock.upsert('append', [
    msg('M3', { extendedTextMessage: { text: 'yes', contextInfo: { stanzaId: 'OWN1', participant: CHAT } } }),
    msg('M4', { imageMessage: { caption: 'a cat', mimetype: 'image/jpeg' } }, { messageTimestamp: '1700000001' })
  ]);
  await settle();
  assert.deepEqual(h.ofType('message'), [
    {
      type: 'message', upsert: 'notify', id: 'M1', chat: CHAT, sender: CHAT, fromMe: false, pushName: 'Bob',
      timestamp: 1700000000, text: 'hello', kind: 'text'
    },
    {
      type: 'message', upsert: 'notify', id: 'M2', chat: CHAT, sender: CHAT, fromMe: false, pushName: 'Bob',
      timestamp: 1700000000, text: 'see https://x.y', kind: 'extended'
    },
    {
      type: 'message', upsert: 'append', id: 'M3', chat: CHAT, sender: CHAT, fromMe: false, pushName: 'Bob',
      timestamp: 1700000000, text: 'yes', kind: 'reply', quotedID: 'OWN1', quotedSender: CHAT
    },
    {
      type: 'message', upsert: 'append', id: 'M4', chat: CHAT, sender: CHAT, fromMe: false, pushName: 'Bob',
      timestamp: 1700000001, text: 'a cat', kind: 'caption'
    }
  ]);
});

test('group messages name the participant as sender; own messages say fromMe', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  sock.upsert('notify', [
    {
      key: { remoteJid: '123@g.us', participant: '15550003333@s.whatsapp.net', id: 'G1' },
      message: { conversation: 'hi all' }
    },
    { key: { remoteJid: CHAT, fromMe: true, id: 'P1' }, message: { conversation: 'from my phone' } }
  ]);
  await settle();
  const [group, own] = h.ofType('message');
  assert.equal(group.chat, '123@g.us');
  assert.equal(group.sender, '15550003333@s.whatsapp.net');
  assert.equal(own.fromMe, true);
  assert.equal('pushName' in group, false);
  assert.equal('timestamp' in group, false);
});

test('a group message says whom it mentions and whose message it quotes', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  const OWN = '15550001111@s.whatsapp.net';
  sock.upsert('notify', [
    {
      key: { remoteJid: '123@g.us', participant: CHAT, id: 'G2' },
      message: { extendedTextMessage: { text: '@15550001111 lunch?', contextInfo: { mentionedJid: [OWN] } } }
    },
    {
      key: { remoteJid: '123@g.us', participant: CHAT, id: 'G3' },
      message: {
        extendedTextMessage: { text: 'agreed', contextInfo: { stanzaId: 'A1', participant: OWN, mentionedJid: [] } }
      }
    },
    { key: { remoteJid: '123@g.us', participant: CHAT, id: 'G4' }, message: { conversation: 'plain' } }
  ]);
  await settle();
  const [mention, reply, plain] = h.ofType('message');
  assert.deepEqual(mention.mentions, [OWN]);
  assert.equal('quotedSender' in mention, false);
  assert.equal('mentions' in reply, false);
  assert.deepEqual([reply.quotedID, reply.quotedSender], ['A1', OWN]);
  assert.equal('mentions' in plain || 'quotedSender' in plain, false);
});

test('status broadcasts, reactions, protocol messages and empty messages are skipped', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  sock.upsert('notify', [
    { key: { remoteJid: 'status@broadcast', participant: CHAT, id: 'S1' }, message: { conversation: 'my status' } },
    msg('R1', { reactionMessage: { key: { id: 'OWN1' }, text: '👍' } }),
    msg('P1', { protocolMessage: { type: 0, key: { id: 'M0' } } }),
    msg('K1', { senderKeyDistributionMessage: { groupId: 'g' }, messageContextInfo: {} }),
    msg('E1', undefined, { messageStubType: 2 }),
    msg('N1', { conversation: 'kept' }),
    { key: { remoteJid: CHAT, fromMe: false }, message: { conversation: 'no id' } }
  ]);
  await settle();
  assert.deepEqual(h.ofType('message').map((e) => e.id), ['N1']);
});

test('other upsert types are not reported', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  sock.upsert('history', [msg('H1', { conversation: 'old' })]);
  await settle();
  assert.equal(h.ofType('message').length, 0);
});

test('wrapped messages are unwrapped; media without caption and unknown content are kind other', () => {
  const ephemeral = msg('W1', {
    ephemeralMessage: { message: { viewOnceMessageV2: { message: { imageMessage: { caption: 'once' } } } } }
  });
  assert.deepEqual(
    [toMessageEvent(ephemeral, 'notify').text, toMessageEvent(ephemeral, 'notify').kind],
    ['once', 'caption']
  );
  const doc = msg('W2', { documentWithCaptionMessage: { message: { documentMessage: { caption: 'the pdf' } } } });
  assert.equal(toMessageEvent(doc, 'notify').text, 'the pdf');
  const photo = toMessageEvent(msg('W3', { imageMessage: { mimetype: 'image/jpeg' } }), 'notify');
  assert.equal(photo.kind, 'other');
  assert.equal('text' in JSON.parse(JSON.stringify(photo)), false, 'no text on the wire');
  const sticker = toMessageEvent(msg('W4', { stickerMessage: {} }), 'append');
  assert.equal(sticker.kind, 'other');
  assert.equal(sticker.text, undefined);
  assert.equal(unwrapContent(undefined), undefined);
});

test('button, list and template replies give their display text', () => {
  const cases = [
    [{ buttonsResponseMessage: { selectedDisplayText: 'Yes', contextInfo: { stanzaId: 'Q1' } } }, 'Yes', 'Q1'],
    [{ listResponseMessage: { title: 'Option A' } }, 'Option A', undefined],
    [{ listResponseMessage: { singleSelectReply: { selectedRowId: 'row-2' } } }, 'row-2', undefined],
    [{ templateButtonReplyMessage: { selectedDisplayText: 'Book' } }, 'Book', undefined]
  ];
  for (const [content, text, quotedID] of cases) {
    const event = toMessageEvent(msg('B', content), 'notify');
    assert.equal(event.text, text);
    assert.equal(event.kind, 'text');
    assert.equal(event.quotedID, quotedID);
  }
});

test('timestamps from protobuf Longs become seconds', () => {
  const long = { low: 1700000000, high: 0, toNumber: () => 1700000000 };
  const event = toMessageEvent(msg('T1', { conversation: 'x' }, { messageTimestamp: long }), 'notify');
  assert.equal(event.timestamp, 1700000000);
});

test('a caption that replies carries the quoted id', () => {
  const video = { videoMessage: { caption: 'look', contextInfo: { stanzaId: 'Q9' } } };
  const event = toMessageEvent(msg('C1', video), 'notify');
  assert.deepEqual([event.kind, event.quotedID], ['caption', 'Q9']);
});

test('messages.update with a status becomes a receipt; other updates do not', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  sock.update([
    { key: { remoteJid: CHAT, fromMe: true, id: 'OWN1' }, update: { status: 3 } },
    { key: { remoteJid: CHAT, fromMe: true, id: 'OWN2' }, update: { status: 0 } },
    { key: { remoteJid: CHAT, fromMe: true, id: 'OWN3' }, update: { message: null, messageStubType: 1 } }
  ]);
  await settle();
  assert.deepEqual(h.ofType('receipt'), [
    { type: 'receipt', id: 'OWN1', chat: CHAT, status: 3 },
    { type: 'receipt', id: 'OWN2', chat: CHAT, status: 0 }
  ]);
});

test('a socket that just closed still delivers its messages', async () => {
  const h = startSidecar();
  const sock = await h.startOpen();
  sock.close(428);
  sock.upsert('notify', [msg('L1', { conversation: 'late' })]);
  await settle();
  assert.deepEqual(h.ofType('message').map((e) => e.id), ['L1']);
});
