/**
 * @module vm/detach-key: the console's detach key, alone in a file without imports so that
 * the CLI's help text names it without loading the console (or the vm module) at start-up.
 */

/** Ctrl-]: detaches from the console. */
export const DETACH_BYTE = 0x1d;
export const DETACH_KEY_NAME = 'Ctrl-]';
