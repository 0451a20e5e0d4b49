// The embedding page's policy: a module of its own, as the startup facade reads it too (under a
// forbidding policy it fetches nothing more) and signals.ts should stay in the stages' chunk.

/**
 * The embedding page's policy, `<meta name="rerun-analytics" content="…">`. Fail closed: once
 * such a tag exists, analytics is allowed only if every one of them explicitly allows it
 * (content "allow", "on", "yes", "true" or "enabled"); any other content, a missing content,
 * or one "off" tag among allowing ones keeps it off.
 */
export function embedderForbids(): boolean {
  const doc = globalThis.document as Document | undefined;
  const tags = doc?.querySelectorAll?.('meta[name="rerun-analytics" i]');
  if (!tags) return false;
  for (const tag of tags) {
    if (!/^\s*(allow|on|yes|true|enabled)\s*$/i.test(tag.getAttribute('content') ?? '')) return true;
  }
  return false;
}
