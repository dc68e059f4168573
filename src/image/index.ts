/** @module image: the table-driven image prober and backing-chain walker. */
export type { ImageFormat, ImageInfo, ChainLayer, ImageChain } from './types.js';
