/**
 * @module vm/logcap: the serial log grows with guest output, so the manager caps it: past
 * a limit it is copied to serial.log.1 and truncated. QEMU writes it O_APPEND, so its next
 * write lands at the new end (offset 0) and nothing has to be reopened. Done on every
 * command that touches a live VM; a guest can still outgrow the cap between commands.
 */
import { copyFile, stat, truncate } from 'node:fs/promises';

/** Default cap of serial.log in bytes. */
export const SERIAL_LOG_CAP = 8 * 1024 * 1024;

/** Rotates `path` to `path.1` when it is larger than `cap`; true if it did. */
export async function capLog(path: string, cap = SERIAL_LOG_CAP): Promise<boolean> {
  const size = await stat(path).then((s) => s.size, () => 0);
  if (size <= cap) return false;
  await copyFile(path, `${path}.1`);
  await truncate(path, 0);
  return true;
}
