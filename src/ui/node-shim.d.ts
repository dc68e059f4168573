/** src/errors names NodeJS.ErrnoException in one type position; the browser bundle has no Node types, so this stands in. */
declare namespace NodeJS {
  interface ErrnoException extends Error { code?: string }
}
