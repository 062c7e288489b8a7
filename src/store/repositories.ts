import { HostRepository, GrantRepository, SnapshotRepository } from './access-repository.js';
import { AttachmentRepository } from './attachment-repository.js';
import { BackendRepository } from './backend-repository.js';
import { ClaimRepository } from './claim-repository.js';
import { ClassRepository } from './class-repository.js';
import { EventRepository } from './event-repository.js';
import { IdempotencyRepository } from './idempotency-repository.js';
import { NodeRepository } from './node-repository.js';
import { OperationRepository } from './operation-repository.js';
import { QuotaRepository } from './quota-repository.js';
import { RetentionRepository } from './retention-repository.js';
import { TenantRepository } from './tenant-repository.js';
import { VolumeRepository } from './volume-repository.js';

/**
 * Every repository, built once by the composition root and handed to services, operation
 * definitions, reconcilers and routes. Repositories hold no state of their own (each call takes the
 * executor it runs on, in or out of a transaction), so one bundle serves the whole process.
 */
export interface Repositories {
  readonly attachments: AttachmentRepository;
  readonly backends: BackendRepository;
  readonly claims: ClaimRepository;
  readonly classes: ClassRepository;
  readonly events: EventRepository;
  readonly grants: GrantRepository;
  readonly hosts: HostRepository;
  readonly idempotency: IdempotencyRepository;
  readonly nodes: NodeRepository;
  readonly operations: OperationRepository;
  readonly quotas: QuotaRepository;
  readonly retention: RetentionRepository;
  readonly snapshots: SnapshotRepository;
  readonly tenants: TenantRepository;
  readonly volumes: VolumeRepository;
}

/** Builds the bundle; only the composition root (and tests standing in for it) calls this. */
export function createRepositories(): Repositories {
  return Object.freeze({
    attachments: new AttachmentRepository(),
    backends: new BackendRepository(),
    claims: new ClaimRepository(),
    classes: new ClassRepository(),
    events: new EventRepository(),
    grants: new GrantRepository(),
    hosts: new HostRepository(),
    idempotency: new IdempotencyRepository(),
    nodes: new NodeRepository(),
    operations: new OperationRepository(),
    quotas: new QuotaRepository(),
    retention: new RetentionRepository(),
    snapshots: new SnapshotRepository(),
    tenants: new TenantRepository(),
    volumes: new VolumeRepository(),
  });
}
