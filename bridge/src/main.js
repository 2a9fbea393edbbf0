// Production entry point: the bridge on a real Baileys socket.
//
// Credentials live in `DATA_DIR/auth` (Baileys' multi-file auth state; mount it on a volume:
// losing it means pairing again). The pairing QR code is printed on the terminal (stdout) and
// served at `GET /qr`. SIGTERM/SIGINT stop the bridge cleanly; inbound messages and receipts
// moked has not accepted yet stay in the outbox for the next start.
import fs from 'node:fs/promises';
import makeWASocket, { Browsers, useMultiFileAuthState } from '@whiskeysockets/baileys';
import pino from 'pino';
import QRCode from 'qrcode';
import { createBridge } from './app.js';
import { ConfigError, fromEnv } from './config.js';
import { createLogger } from './log.js';

let config;
try {
  config = fromEnv();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`baileys-bridge: ${error.message}`);
  process.exit(2);
}
const log = createLogger(config.logLevel);
// Baileys' own logs carry JIDs and protocol dumps: only its errors, unless debugging.
const baileysLog = pino({ level: config.logLevel === 'debug' ? 'debug' : 'error' });

async function connect() {
  const { state, saveCreds } = await useMultiFileAuthState(config.authDir);
  const socket = makeWASocket({
    auth: state,
    logger: baileysLog,
    browser: Browsers.ubuntu('moked'),
    markOnlineOnConnect: false,
    syncFullHistory: false,
  });
  socket.ev.on('creds.update', saveCreds);
  return socket;
}

async function resetAuth() {
  await fs.rm(config.authDir, { recursive: true, force: true });
}

function onQr(qr) {
  QRCode.toString(qr, { type: 'terminal', small: true }).then((art) => {
    process.stdout.write(
      `\nScan with WhatsApp on the call centre's phone: Settings → Linked devices → Link a device\n${art}\n` +
        `(or open GET /qr with the secret; the code changes every ~20 s)\n`,
    );
  });
}

const bridge = createBridge({ config, connect, resetAuth, onQr, log });
const port = await bridge.start();
log.info('baileys bridge listening', { port, moked: new URL(config.webhookUrl).origin });

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal, outbox: bridge.outbox.size });
    await bridge.stop();
    process.exit(0);
  });
}
