/**
 * The correlation id of the request being served: the caller's
 * `x-correlation-id` (at most 200 characters), else a fresh one. Set once per
 * request by the server, read by the handlers for the events they append.
 */
import { FiberRef } from "effect"

export const currentCorrelationId: FiberRef.FiberRef<string | undefined> = FiberRef.unsafeMake<string | undefined>(
  undefined
)

/** The id a request carries, or a fresh one when it carries none (or an empty one). */
export const correlationIdOf = (header: string | undefined): string => header?.slice(0, 200) || crypto.randomUUID()
