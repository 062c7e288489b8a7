import { Type, type Static } from '@sinclair/typebox';
import type { BackendId, VolumeId } from '../ids.js';
import { AllTenants, Bytes, IdString, Name, Nullable, PageQuery, Ref, literals } from '../models.js';
import { SNAPSHOT_STATES } from '../states.js';
import { OperationSchema } from './operation-schema.js';

/** A snapshot as the API and CLI show it. */
export const SnapshotSchema = Type.Object({
  id: Type.String(),
  tenantId: Type.String({ description: 'the tenant it belongs to' }),
  name: Type.String(),
  volumeId: IdString<VolumeId>(),
  volumeName: Nullable(Type.String()),
  backendId: IdString<BackendId>(),
  state: literals(SNAPSHOT_STATES),
  stateReason: Nullable(Type.String()),
  sizeBytes: Bytes,
  method: Nullable(Type.String({ description: 'how the backend made it: btrfs-snapshot, reflink, qcow2-backing, copy' })),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
/** A snapshot. */
export type Snapshot = Static<typeof SnapshotSchema>;

/** Body of POST /v1/snapshots. */
export const CreateSnapshotBody = Type.Object({ volume: Ref, name: Name }, { additionalProperties: false });
/** A create-snapshot request. */
export type CreateSnapshotInput = Static<typeof CreateSnapshotBody>;

/** Query of GET /v1/snapshots. */
export const SnapshotListQuery = Type.Composite([PageQuery, AllTenants, Type.Object({ volume: Type.Optional(Type.String({ maxLength: 128 })) })], { additionalProperties: false });
/** The filters of a snapshot list (the page aside). */
export type SnapshotListFilter = Omit<Static<typeof SnapshotListQuery>, 'limit' | 'cursor'>;

/** Body of POST /v1/volumes/{ref}/revert. */
export const RevertVolumeBody = Type.Object({ snapshot: Ref }, { additionalProperties: false });

/** Answer of snapshot create and delete: the snapshot and the operation doing the work. */
export const SnapshotWithOperation = Type.Object({ snapshot: SnapshotSchema, operation: OperationSchema });
/** A snapshot and its operation. */
export type SnapshotWithOperationT = Static<typeof SnapshotWithOperation>;
