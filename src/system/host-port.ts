/**
 * `host:port` or `[v6]:port` split into its host (without the brackets) and port (0-65535), or
 * undefined when it is neither. Callers say in their own words what was wrong.
 */
export function parseHostPort(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  return host && port >= 0 && port <= 65535 ? { host, port } : undefined;
}
