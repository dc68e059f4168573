/** @module spec/locate: maps a path in the parsed spec to file:line:col through the YAML document's node ranges. */
import { isMap, isPair, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';

export type PathSeg = string | number;

/** `disks[0].format` from ['disks', 0, 'format']. */
export function formatPath(path: readonly PathSeg[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

interface Found { node: Node | null; keyNode: Node | null; depth: number }

/** Walks as far down the path as the document goes; keyNode is the key of the last map entry met. */
function walk(doc: Document, path: readonly PathSeg[]): Found {
  let node = doc.contents as Node | null;
  let keyNode: Node | null = null;
  let depth = 0;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === seg);
      if (pair === undefined) break;
      keyNode = pair.key as Node;
      node = (pair.value as Node | null) ?? keyNode;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as Node | undefined;
      if (item === undefined) break;
      node = item;
      keyNode = null;
    } else {
      break;
    }
    depth++;
  }
  return { node, keyNode, depth };
}

/**
 * The position of a path: its value node when the path exists, the key node when asked
 * for the key (unknown keys, duplicates), else the deepest existing ancestor.
 */
export function locate(doc: Document, lc: LineCounter, path: readonly PathSeg[], preferKey = false): { line: number; col: number } {
  const found = walk(doc, path);
  const exact = found.depth === path.length;
  const node = exact && preferKey && found.keyNode !== null ? found.keyNode : found.node;
  const offset = node?.range?.[0] ?? 0;
  return lc.linePos(offset);
}

/** ['disks', 0, 'image'] from "disks[0].image" (anything after the first space is ignored). */
export function parsePath(text: string): PathSeg[] {
  const head = text.split(' ')[0] ?? '';
  const out: PathSeg[] = [];
  for (const m of head.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  return out;
}
