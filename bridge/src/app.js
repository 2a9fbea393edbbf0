// The bridge assembled: key store, outbox (inbound messages and receipts), forwarder, session
// and HTTP server, around an injected socket factory. main.js passes Baileys' `makeWASocket`;
// tests pass a stub.
import http from 'node:http';
import path from 'node:path';
import { KeyStore } from './idempotency.js';
import { Forwarder, Outbox } from './outbox.js';
import { createHandler } from './server.js';
import { Session } from './session.js';

/**
 * @param {{config: ReturnType<typeof import('./config.js').fromEnv>, connect: () => Promise<object>,
 *          resetAuth?: () => Promise<void>, onQr?: (qr: string) => void,
 *          log: import('./log.js').Logger, now?: () => number,
 *          retry?: {baseMs?: number, capMs?: number}, reconnectMs?: number}} options
 */
export function createBridge({ config, connect, resetAuth, onQr, log, now, retry = {}, reconnectMs }) {
  const keys = new KeyStore(path.join(config.dataDir, 'keys.jsonl'), { ttlMs: config.ttlMs, now });
  const outbox = new Outbox(path.join(config.dataDir, 'outbox.jsonl'));
  const forwarder = new Forwarder(outbox, { url: config.webhookUrl, secret: config.secret, log, ...retry });
  const session = new Session({
    connect,
    resetAuth,
    onQr,
    reconnectMs,
    log,
    onInbound: (body) => outbox.add(body),
    onReceipt: (body) => outbox.add(body),
  });
  const bridge = { secret: config.secret, keys, outbox, forwarder, session, log };
  const server = http.createServer(createHandler(bridge));

  return {
    ...bridge,
    server,
    /** Starts delivering, connects to WhatsApp and listens; answers the bound port. */
    async start() {
      forwarder.start();
      await session.start();
      await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, resolve);
      });
      return server.address().port;
    },
    /** Stops taking requests, closes the socket, ends the delivery loop, closes the files. */
    async stop() {
      await new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
      session.stop();
      await forwarder.stop();
      keys.close();
      outbox.close();
    },
  };
}
