/**
 * @module api/http-tls: the HTTPS listener's address and certificate: `--http ADDR:PORT`
 * parsed, loopback told apart, and a self-signed certificate made once with openssl and
 * kept under the state root (STATE/tls) unless the operator gives --tls-cert/--tls-key,
 * which a non-loopback address requires.
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { WardenError } from '../errors/index.js';

export interface HttpListen {
  host: string;
  port: number;
  loopback: boolean;
}

export interface TlsMaterial {
  cert: string;
  key: string;
  /** SHA-256 fingerprint of the certificate (AA:BB:...), for the operator to compare. */
  fingerprint: string;
  /** Where they came from: the given files, or the self-signed pair under the state root. */
  source: 'given' | 'self-signed';
  certPath: string;
}

/** `127.0.0.1:8443`, `[::1]:8443`, `localhost:8443`, `0.0.0.0:443` → host and port (0: any free port, as tests use). */
export function parseHttpListen(addr: string): HttpListen {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(addr);
  const port = m === null ? Number.NaN : Number(m[3]);
  const host = m?.[1] ?? m?.[2] ?? '';
  if (m === null || !(port >= 0 && port < 65536) || (m[1] !== undefined && isIP(host) !== 6)) {
    throw new WardenError('USAGE_HTTP_ADDRESS', `--http ${addr} is not ADDR:PORT`, { suggestions: ['--http 127.0.0.1:8443', '--http [::1]:8443'] });
  }
  return { host, port, loopback: isLoopback(host) };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * The certificate and key to serve: the given files, or the self-signed pair under
 * `stateRoot/tls` (made on first use, kept so browsers can pin an exception). A
 * non-loopback address without given files is refused: a self-signed certificate there
 * teaches users to click through warnings on the network.
 */
export function loadTls(listen: HttpListen, stateRoot: string, given: { cert?: string; key?: string }): TlsMaterial {
  if ((given.cert === undefined) !== (given.key === undefined)) {
    throw new WardenError('USAGE_TLS_FILES', '--tls-cert and --tls-key go together');
  }
  if (given.cert !== undefined && given.key !== undefined) {
    return material(given.cert, given.key, 'given');
  }
  if (!listen.loopback) {
    throw new WardenError('USAGE_HTTP_NEEDS_TLS', `serving HTTPS on ${listen.host}, which is not a loopback address, needs --tls-cert and --tls-key`, {
      context: { host: listen.host }, suggestions: [`--http 127.0.0.1:${listen.port}`, '--tls-cert FILE --tls-key FILE'],
    });
  }
  const dir = join(stateRoot, 'tls');
  const cert = join(dir, 'server.crt');
  const key = join(dir, 'server.key');
  if (!existsSync(cert) || !existsSync(key)) makeSelfSigned(dir, cert, key);
  return material(cert, key, 'self-signed');
}

function material(certPath: string, keyPath: string, source: TlsMaterial['source']): TlsMaterial {
  try {
    const cert = readFileSync(certPath, 'utf8');
    const key = readFileSync(keyPath, 'utf8');
    const fingerprint = new X509Certificate(cert).fingerprint256;
    return { cert, key, fingerprint, source, certPath };
  } catch (cause) {
    throw new WardenError('USAGE_TLS_FILES', `reading the TLS certificate ${certPath} and key ${keyPath} failed`, { context: { certPath, keyPath }, cause });
  }
}

/** An EC P-256 pair for localhost, 127.0.0.1 and ::1, valid 825 days (the browsers' limit); the key is 0600 in a 0700 directory. */
function makeSelfSigned(dir: string, cert: string, key: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmpKey = `${key}.tmp-${process.pid}`;
  const tmpCert = `${cert}.tmp-${process.pid}`;
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '825',
      '-subj', `/CN=qemu-warden ${createHash('sha256').update(dir).digest('hex').slice(0, 8)}`,
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1', '-keyout', tmpKey, '-out', tmpCert], { stdio: ['ignore', 'ignore', 'pipe'] });
    chmodSync(tmpKey, 0o600);
    renameSync(tmpKey, key);
    renameSync(tmpCert, cert);
  } catch (cause) {
    throw new WardenError('HOST_TLS_CERT', `making a self-signed certificate in ${dir} with openssl failed`, { context: { dir }, cause, suggestions: ['apt-get install openssl'] });
  } finally {
    rmSync(tmpKey, { force: true });
    rmSync(tmpCert, { force: true });
  }
}
