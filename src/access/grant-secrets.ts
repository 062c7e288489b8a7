import { randomBytes } from 'node:crypto';
import type { VolumeId } from '../core/ids.js';
import { newId } from '../core/ids.js';
import type { ConnectionInfoModel } from '../core/schemas/access-schema.js';
import type { AccessMode, GrantRequest } from '../drivers/sdk/types.js';
import { hostIdentity } from '../hosts/host-service.js';
import { nowIso } from '../store/json.js';
import type { GrantRow, HostRow } from '../store/schema.js';
import type { SecretBox } from '../system/secret-box.js';
import type { GrantRepository } from '../store/access-repository.js';
import type { Executor } from '../store/store.js';

/**
 * The one place grant rows get their CHAP credentials and the one place they are opened again:
 * a CHAP user per host, a fresh secret per grant, sealed at rest.
 */
export function newGrantRow(g: { tenantId: string; volumeId: VolumeId; host: Pick<HostRow, 'id' | 'name'>; mode: AccessMode }, secrets: SecretBox): GrantRow {
  const at = nowIso();
  return {
    id: newId('grant'), tenant_id: g.tenantId, volume_id: g.volumeId, host_id: g.host.id, mode: g.mode, state: 'granting', state_reason: null,
    chap_user: `stw-${g.host.name}`.slice(0, 60), chap_secret_sealed: secrets.encrypt(randomBytes(18).toString('base64url')),
    connection: null, created_at: at, updated_at: at,
  };
}

/** What a driver is asked to bind for a grant: the host's identity, the mode, and the opened CHAP credentials. */
export function grantRequestOf(g: GrantRow, host: HostRow, secrets: SecretBox): GrantRequest {
  const secret = g.chap_secret_sealed ? secrets.decrypt(g.chap_secret_sealed) : null;
  return { host: hostIdentity(host), mode: g.mode, ...(g.chap_user && secret ? { chap: { user: g.chap_user, secret } } : {}) };
}

/** Connection info with the CHAP secret opened (only for answers to the grantee or an admin). */
export function withChapSecret(g: GrantRow, info: ConnectionInfoModel, secrets: SecretBox): ConnectionInfoModel {
  if (!info.chapUser || !g.chap_secret_sealed) return info;
  return { ...info, chapSecret: secrets.decrypt(g.chap_secret_sealed) };
}

/** The one way a grant row is created: fresh CHAP credentials (see `newGrantRow`), inserted in `db`. */
export async function insertGrant(db: Executor, grants: GrantRepository, g: Parameters<typeof newGrantRow>[0], secrets: SecretBox): Promise<GrantRow> {
  const row = newGrantRow(g, secrets);
  await grants.insert(db, row);
  return row;
}
