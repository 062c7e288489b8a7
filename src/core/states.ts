/** Volume lifecycle. Transitional states (creating, resizing, deleting) always have a resume path. */
export const VOLUME_STATES = ['creating', 'available', 'resizing', 'reverting', 'deleting', 'deleted', 'error'] as const;
export type VolumeState = (typeof VOLUME_STATES)[number];

/** Which volume states are transitional (owned by a running operation). */
export const VOLUME_STATE_IS_TRANSITIONAL = {
  creating: true,
  available: false,
  resizing: true,
  reverting: true,
  deleting: true,
  deleted: false,
  error: false,
} as const satisfies Record<VolumeState, boolean>;

export const BACKEND_STATES = ['enabled', 'disabled', 'offline', 'error'] as const;
export type BackendState = (typeof BACKEND_STATES)[number];

export const BACKEND_ROLES = ['primary', 'repository'] as const;
export type BackendRole = (typeof BACKEND_ROLES)[number];

export const BACKEND_KINDS = ['block', 'file', 'object'] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];

export const OPERATION_STATES = ['queued', 'running', 'succeeded', 'failed'] as const;
export type OperationState = (typeof OPERATION_STATES)[number];

export const VOLUME_FORMATS = ['raw', 'qcow2'] as const;
export type VolumeFormat = (typeof VOLUME_FORMATS)[number];
