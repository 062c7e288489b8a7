import { Type } from '@sinclair/typebox';
import { CAPABILITIES, type Capability } from '../capabilities.js';

/** A capability name on the wire (an enum in OpenAPI). */
export const CapabilitySchema = Type.Unsafe<Capability>({ type: 'string', enum: [...CAPABILITIES] });
