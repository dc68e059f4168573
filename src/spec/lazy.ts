/**
 * @module spec/lazy: zod schemas built on first use. zod builds each schema object at once
 * (~100 of them, 5-7 ms at every start), and most processes that load the spec module never
 * parse a spec (`warden list`, a command the daemon serves, the vm lifecycle's other verbs):
 * they no longer pay for it (issue 16).
 */
import * as z from 'zod';

/** `build`'s value, computed by the first call. */
export function once<T>(build: () => T): () => T {
  let built: { value: T } | undefined;
  return () => (built ??= { value: build() }).value;
}

/**
 * A stand-in for the schema `get()` returns, built when it is first used: any operation on
 * it (a property, a method called on it, `instanceof` through zod's traits, its keys) builds
 * the schema, makes the stand-in's target a copy of it (same prototype, same own properties,
 * so the proxy invariants hold) and then acts on that copy; zod's state lives in the shared
 * `_zod` object, so the stand-in parses, composes and converts as the real schema does.
 * zod keeps descriptions in a registry keyed by the schema object: the stand-in is entered
 * there with the real schema's entry. For the module's exports only: inside the spec module,
 * schemas are composed from the real ones.
 */
export function lazySchema<T extends object>(get: () => T): T {
  const target = {} as T;
  let built = false;
  const ready = (): T => {
    if (!built) {
      const real = get();
      Object.defineProperties(target, Object.getOwnPropertyDescriptors(real));
      Object.setPrototypeOf(target, Object.getPrototypeOf(real));
      built = true;
      const meta = z.globalRegistry.get(real as unknown as z.ZodType);
      if (meta !== undefined) z.globalRegistry.add(proxy as unknown as z.ZodType, meta);
    }
    return target;
  };
  const handler: ProxyHandler<T> = {};
  for (const trap of ['get', 'set', 'has', 'ownKeys', 'getOwnPropertyDescriptor', 'defineProperty', 'deleteProperty', 'getPrototypeOf', 'setPrototypeOf', 'isExtensible', 'preventExtensions'] as const) {
    (handler as Record<string, unknown>)[trap] = (_t: T, ...args: unknown[]) => (Reflect[trap] as (...a: unknown[]) => unknown)(ready(), ...args);
  }
  const proxy = new Proxy(target, handler);
  return proxy;
}
