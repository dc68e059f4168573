/**
 * @module image/host-policy: the host-wide image policy file (/etc/warden/policy.yaml, or
 * $WARDEN_POLICY), read by the CLI and the daemon alike: directories every VM's chains may
 * lead into (a shared base-image store), on top of each disk's own places.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, normalize } from 'node:path';
import { parse } from 'yaml';
import { ImageError } from './errors.js';

export const DEFAULT_POLICY_FILE = '/etc/warden/policy.yaml';

export interface HostPolicy {
  /** The file read, or null when there is none (the default file may be absent). */
  file: string | null;
  /** Absolute directories every chain may lead into (subdirectories included). */
  imageDirs: string[];
}

/** Where the policy file is: $WARDEN_POLICY when set, else /etc/warden/policy.yaml. */
export function hostPolicyFile(env: NodeJS.ProcessEnv = process.env): string {
  const v = env['WARDEN_POLICY'];
  return v !== undefined && v !== '' ? v : DEFAULT_POLICY_FILE;
}

function invalid(file: string, why: string, cause?: unknown): ImageError {
  return new ImageError('IMAGE_POLICY_INVALID', `the host image policy ${file} is invalid: ${why}`, {
    context: { file }, ...(cause === undefined ? {} : { cause }),
    suggestions: ['write it as YAML: imageDirs: [/var/lib/warden/images, ...] (absolute directories); see docs/design.md "Image policy"'],
  });
}

/** Parses a policy file's text (pure; `file` names it in errors). */
export function parseHostPolicy(text: string, file: string): HostPolicy {
  let data: unknown;
  try { data = parse(text) ?? {}; } catch (cause) { throw invalid(file, 'not YAML', cause); }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw invalid(file, 'the top level must be a mapping');
  const unknown = Object.keys(data).filter((k) => k !== 'imageDirs');
  if (unknown.length > 0) throw invalid(file, `unknown key${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (only imageDirs is known)`);
  const dirs = (data as { imageDirs?: unknown }).imageDirs ?? [];
  if (!Array.isArray(dirs) || !dirs.every((d): d is string => typeof d === 'string' && isAbsolute(d))) throw invalid(file, 'imageDirs must be a list of absolute directories');
  if (dirs.some((d) => normalize(d) === '/')) throw invalid(file, 'imageDirs may not contain / (that would allow every file on the host)');
  return { file, imageDirs: dirs.map((d) => normalize(d)) };
}

/** Reads the host policy; an absent default file is an empty policy, an absent $WARDEN_POLICY file is an error. */
export function loadHostPolicy(env: NodeJS.ProcessEnv = process.env): HostPolicy {
  const file = hostPolicyFile(env);
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && file === DEFAULT_POLICY_FILE) return { file: null, imageDirs: [] };
    throw invalid(file, `it cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, err);
  }
  return parseHostPolicy(text, file);
}
