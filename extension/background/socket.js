// The worker's two sockets. `socket` is the reader's own stream socket: account.js, which owns the
// session, sets what its events do, so the modules below account.js (status, streams) can send on
// it without importing upwards. `privateSocket` is the anonymous one of private spending; its
// events are private.js's.

import { PrivateSocket, StreamSocket } from './connection.js';

/** @type {import('./connection.js').SocketHandlers | null} */
let handlers = null;
/** @type {import('./connection.js').Handlers<import('./protocol.js').PrivateWelcome> | null} */
let privateHandlers = null;

export const socket = new StreamSocket({
  onWelcome: (welcome) => handlers?.onWelcome(welcome),
  onMessage: (message) => handlers?.onMessage(message),
  onDown: (code, willRetry) => handlers?.onDown(code, willRetry),
});

export const privateSocket = new PrivateSocket({
  onWelcome: (welcome) => privateHandlers?.onWelcome(welcome),
  onMessage: (message) => privateHandlers?.onMessage(message),
  onDown: (code, willRetry) => privateHandlers?.onDown(code, willRetry),
});

/**
 * Say what the socket's events do (account.js, once, when it loads; the socket opens only
 * through account.js, so no event comes before).
 * @param {import('./connection.js').SocketHandlers} eventHandlers
 */
export function handleSocketEvents(eventHandlers) {
  handlers = eventHandlers;
}

/**
 * Say what the private socket's events do (private.js, once, when it loads).
 * @param {import('./connection.js').Handlers<import('./protocol.js').PrivateWelcome>} eventHandlers
 */
export function handlePrivateSocketEvents(eventHandlers) {
  privateHandlers = eventHandlers;
}
