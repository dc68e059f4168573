/** @module sys/node-clock: the real Clock. */
import { setTimeout as delay } from 'node:timers/promises';
import type { Clock } from './ports.js';

export const nodeClock: Clock = {
  now: () => performance.now(),
  sleep: (ms: number) => delay(ms).then(() => undefined),
};
