import type { PlacementSummary } from '../core/schemas/placement-schema.js';
import { formatScore, size } from './output.js';

/**
 * Says in words how a volume was placed: the reason, how many backends were considered, how many
 * each filter rejected, the best candidates with their scores, and every provisioning attempt.
 */
export function describePlacement(p: PlacementSummary): string[] {
  const lines = [p.reason.endsWith('.') ? p.reason : `${p.reason}.`];
  const how = p.pinned ? `pinned to ${p.winner ?? '?'} by request` : `policy ${p.policy}`;
  lines.push(`Considered ${p.candidates} backend${p.candidates === 1 ? '' : 's'} (${how}${p.className ? `, class ${p.className}` : ''}).`);
  const rejections = Object.entries(p.rejected).filter(([, n]) => n > 0);
  lines.push(rejections.length
    ? `Rejected: ${rejections.map(([filter, n]) => `${n} by the ${filter} filter`).join(', ')}.`
    : 'Rejected: none; every backend passed every filter.');
  if (p.top.length) {
    lines.push(`Top candidates: ${p.top.map((t, i) => `${i + 1}. ${t.backend} (score ${formatScore(t.score)}, ${size(t.usableBytes)} usable, cost ${t.cost})`).join('; ')}.`);
  }
  if (p.attempts.length) {
    lines.push(`Attempts: ${p.attempts.map((a) => (a.ok ? `${a.backend} succeeded` : `${a.backend} failed (${a.error ?? 'no reason given'})`)).join('; ')}.`);
  } else {
    lines.push('Attempts: no backend failed to provision it.');
  }
  return lines;
}
