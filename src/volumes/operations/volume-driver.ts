import { StowageError } from '../../core/errors.js';
import type { BackendId, VolumeId } from '../../core/ids.js';
import type { BlockDriver, DriverHandle } from '../../drivers/sdk/types.js';
import type { OperationDeps } from '../../operations/operation-deps.js';
import type { StepContext } from '../../operations/handler.js';
import type { BackendRow, VolumeRow } from '../../store/schema.js';
import { volumeHandle } from '../../store/volume-repository.js';

/** A volume with its backend, that backend's driver (guarded by the operation's lease) and the volume's handle. */
export interface VolumeOnBackend {
  readonly volume: VolumeRow;
  readonly backend: BackendRow;
  readonly driver: BlockDriver;
  readonly handle: DriverHandle;
}

type Deps = Pick<OperationDeps, 'store' | 'repos' | 'drivers'>;

/** The handle stored at create, or one derived from the id (drivers key everything on our ids). */
export function handleOfVolume(v: VolumeRow): DriverHandle {
  return volumeHandle(v) ?? { id: v.id, format: v.format };
}

/** The volume row; VOLUME_NOT_FOUND when it is gone. */
export async function loadVolume(deps: Deps, id: VolumeId): Promise<VolumeRow> {
  const v = await deps.repos.volumes.findById(deps.store.db, id);
  if (!v) throw new StowageError('VOLUME_NOT_FOUND', `volume ${id} vanished`, { volume: id });
  return v;
}

/** The backend row and its driver, guarded by the operation's lease (a stale worker makes no driver call). */
export async function backendDriver(deps: Deps, ctx: StepContext<object>, backendId: BackendId | null): Promise<{ backend: BackendRow; driver: BlockDriver }> {
  if (!backendId) throw new StowageError('INVALID_STATE', 'volume has no backend', {});
  const backend = await deps.repos.backends.findById(deps.store.db, backendId);
  if (!backend) throw new StowageError('BACKEND_NOT_FOUND', `backend ${backendId} no longer exists`, { backend: backendId });
  return { backend, driver: ctx.guard(deps.drivers.get(backend)) };
}

/** The one way from a volume to its backend, driver and handle. */
export async function volumeOnBackend(deps: Deps, ctx: StepContext<object>, volume: VolumeRow): Promise<VolumeOnBackend> {
  const { backend, driver } = await backendDriver(deps, ctx, volume.backend_id);
  return { volume, backend, driver, handle: handleOfVolume(volume) };
}
