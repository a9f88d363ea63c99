// The worker's one stream socket. account.js, which owns the session, sets what its events do, so
// the modules below account.js (status, streams) can send on it without importing upwards.

import { StreamSocket } from './connection.js';

/** @type {import('./connection.js').SocketHandlers | null} */
let handlers = null;

export const socket = new StreamSocket({
  onWelcome: (welcome) => handlers?.onWelcome(welcome),
  onMessage: (message) => handlers?.onMessage(message),
  onDown: (code, willRetry) => handlers?.onDown(code, willRetry),
});

/**
 * Say what the socket's events do (account.js, once, when it loads; the socket opens only
 * through account.js, so no event comes before).
 * @param {import('./connection.js').SocketHandlers} eventHandlers
 */
export function handleSocketEvents(eventHandlers) {
  handlers = eventHandlers;
}
