import type { Static } from '@sinclair/typebox';
import { grantCreate } from './access/operations/grant-create.js';
import { grantRevoke } from './access/operations/grant-revoke.js';
import { attachmentAttach } from './attachments/operations/attachment-attach.js';
import { attachmentDetach } from './attachments/operations/attachment-detach.js';
import { hostFence } from './attachments/operations/host-fence.js';
import { migrationAbort } from './attachments/operations/migration-abort.js';
import { migrationComplete } from './attachments/operations/migration-complete.js';
import { migrationStart } from './attachments/operations/migration-start.js';
import type { OperationHandler } from './operations/handler.js';
import type { OperationDeps } from './operations/operation-deps.js';
import { snapshotCreate } from './snapshots/operations/snapshot-create.js';
import { snapshotDelete } from './snapshots/operations/snapshot-delete.js';
import { volumeRevert } from './snapshots/operations/volume-revert.js';
import { volumeCreate } from './volumes/operations/volume-create.js';
import { volumeDelete } from './volumes/operations/volume-delete.js';
import { volumeResize } from './volumes/operations/volume-resize.js';
import { tenantDelete } from './tenants/operations/tenant-delete.js';

/** What the operation handlers need to run their steps. */
export type OperationHandlerDeps = OperationDeps;

/**
 * Every operation kind the server runs, in one list: the server registers exactly these, and the
 * crash-recovery matrix enumerates their kinds and steps from here, so a new kind joins the matrix
 * (and fails its coverage test until it has a scenario) by being added here.
 */
const OPERATIONS = [
  volumeCreate, volumeResize, volumeDelete,
  grantCreate, grantRevoke,
  snapshotCreate, snapshotDelete, volumeRevert,
  attachmentAttach, attachmentDetach, hostFence,
  migrationStart, migrationComplete, migrationAbort,
  tenantDelete,
] as const;

type Registered = ReturnType<(typeof OPERATIONS)[number]>;

/** One of the operation kinds the server runs (an inline kind is an `InlineKind` instead). */
export type OperationKind = Registered['kind'];

/** `T` with every array and object read-only: what a service passes in is never changed by the enqueue. */
type Frozen<T> = T extends readonly (infer E)[] ? readonly Frozen<E>[] : T extends object ? { readonly [P in keyof T]: Frozen<T[P]> } : T;

/** The input each registered kind is enqueued with, as its schema says. */
export type OperationInputs = { readonly [D in Registered as D['kind']]: Frozen<Static<D['input']>> };

/** The handlers of every registered kind, bound to `deps`. */
export function operationHandlers(deps: OperationHandlerDeps): OperationHandler[] {
  return OPERATIONS.map((define) => define(deps));
}
