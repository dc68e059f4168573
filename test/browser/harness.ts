/**
 * @module test/browser/harness: real headless Chromium (Debian's /usr/bin/chromium) driven
 * by puppeteer-core, which downloads no browser; HTTPS requests from Node that trust exactly
 * the server's certificate; and screenshots into docs/ when WARDEN_SCREENSHOTS=1.
 */
import { existsSync, mkdirSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';

export const CHROMIUM = process.env['WARDEN_CHROMIUM'] ?? '/usr/bin/chromium';

/** Why the browser tests cannot run here, or null. */
export function browserMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing (apt-get install chromium)`;
}

export async function launchBrowser(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // the daemon's certificate is self-signed for loopback; Node's own requests below check it exactly
    acceptInsecureCerts: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--window-size=1280,860'],
    defaultViewport: { width: 1280, height: 860 },
  });
}

export interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/** One HTTPS request from Node that trusts only `ca` (the server's own certificate). */
export function request(url: string, ca: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: o.method ?? 'GET', headers: o.headers ?? {}, ca, servername: 'localhost' }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => { body += s; }).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Saves a screenshot as docs/screenshots/NAME.png when WARDEN_SCREENSHOTS=1 (docs are refreshed on purpose, not by every test run). */
export async function screenshot(page: Page, name: string): Promise<void> {
  if (process.env['WARDEN_SCREENSHOTS'] !== '1') return;
  const dir = new URL('../../../docs/screenshots/', import.meta.url).pathname;
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`) as `${string}.png` });
}

/** Waits until `expr` (a JavaScript expression evaluated in the page) is truthy, and returns its value; the message names what never came. */
export async function waitIn(page: Page, what: string, expr: string, timeoutMs = 30_000): Promise<unknown> {
  try {
    const h = await page.waitForFunction(expr, { timeout: timeoutMs, polling: 100 });
    return await h.jsonValue();
  } catch (err) {
    throw new Error(`waiting in the browser for ${what} failed`, { cause: err });
  }
}
