// moked operator console: a service worker that lets a recording stream. An <audio> element
// cannot send the operator's bearer token, so it could only play a file fetched whole first;
// this worker adds the token to the element's own requests for /api/recordings/{sid}/audio,
// Range header included, so playback starts at once and seeking asks for just the bytes needed.
//
// It keeps no token: for each such request it asks the page that made it (the token lives in
// that tab's sessionStorage) over a MessageChannel. Every other request passes untouched.
'use strict';

const AUDIO = /^\/api\/recordings\/[^/]+\/audio$/;

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/** Asks a page of ours for the token; null after a second without an answer. */
async function tokenFrom(clientId) {
  const client = (clientId && await self.clients.get(clientId))
    || (await self.clients.matchAll({ type: 'window' }))[0];
  if (!client) return null;
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(() => resolve(null), 1000);
    channel.port1.onmessage = (e) => { clearTimeout(timer); resolve((e.data && e.data.token) || null); };
    client.postMessage({ type: 'moked-token?' }, [channel.port2]);
  });
}

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin || !AUDIO.test(url.pathname) || event.request.headers.has('Authorization')) return;
  event.respondWith((async () => {
    const token = await tokenFrom(event.clientId);
    const headers = new Headers();
    const range = event.request.headers.get('Range');
    if (range) headers.set('Range', range);
    if (token) headers.set('Authorization', `Bearer ${token}`);
    return fetch(url.href, { headers, cache: 'no-store', credentials: 'omit' });
  })());
});
