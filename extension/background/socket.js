// The worker's one stream socket, shared by the modules that send on it. What its events do is
// set once by account.js, which owns the session the socket belongs to: the modules below it
// (streams, status) only send and ask whether it is connected, so none imports one above it.

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
