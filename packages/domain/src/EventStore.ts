/**
 * Port: the event store, source of truth of every order.
 *
 * @since 0.1.0
 */
import type { Array as Arr } from "effect"
import { Context, Effect, Layer } from "effect"
import type { ServiceUnavailable } from "./OrderError.js"
import { ConcurrencyConflict } from "./OrderError.js"
import type { OrderEventEnvelope, OrderId } from "./OrderEvent.js"

export interface EventStoreShape {
  /** The stream's events in version order; empty when the stream does not exist. */
  readonly read: (streamId: OrderId) => Effect.Effect<ReadonlyArray<OrderEventEnvelope>, ServiceUnavailable>
  /**
   * Appends all of `events` or none. Fails with `ConcurrencyConflict` unless the
   * stream is at `expectedVersion` (0: it does not exist yet). The events'
   * versions must follow on from `expectedVersion` without gaps.
   */
  readonly append: (
    streamId: OrderId,
    expectedVersion: number,
    events: Arr.NonEmptyReadonlyArray<OrderEventEnvelope>
  ) => Effect.Effect<void, ConcurrencyConflict | ServiceUnavailable>
  /**
   * Appended events not yet marked as published (the outbox): at most `limit`,
   * in version order within each stream.
   */
  readonly unpublished: (limit: number) => Effect.Effect<ReadonlyArray<OrderEventEnvelope>, ServiceUnavailable>
  /** Records that the stream's events up to `version` reached the bus. */
  readonly markPublished: (streamId: OrderId, version: number) => Effect.Effect<void, ServiceUnavailable>
}

export class EventStore extends Context.Tag("orders/EventStore")<EventStore, EventStoreShape>() {}

/** Checks the invariant every adapter relies on: versions follow on from the expected one. */
export const assertContiguous = (
  streamId: OrderId,
  expectedVersion: number,
  events: ReadonlyArray<OrderEventEnvelope>
): Effect.Effect<void> =>
  events.every((event, i) => event.streamId === streamId && event.version === expectedVersion + i + 1)
    ? Effect.void
    : Effect.dieMessage(`events appended to '${streamId}' must have versions ${expectedVersion + 1}..`)

interface MemoryStream {
  readonly events: Array<OrderEventEnvelope>
  publishedVersion: number
}

/**
 * The event store kept in process memory: same guarantees as the real one, lost
 * on exit. Each operation is one synchronous step, so appends cannot interleave.
 * Streams with unpublished events are kept apart, so that the relay's poll
 * costs what is pending, not the whole store.
 */
export const makeMemory: Effect.Effect<EventStoreShape> = Effect.sync(() => {
  const streams = new Map<OrderId, MemoryStream>()
  const pending = new Set<MemoryStream>()
  return {
    read: (streamId) => Effect.sync(() => [...(streams.get(streamId)?.events ?? [])]),
    append: (streamId, expectedVersion, events) =>
      assertContiguous(streamId, expectedVersion, events).pipe(
        Effect.zipRight(Effect.suspend(() => {
          const existing = streams.get(streamId)
          if ((existing?.events.length ?? 0) !== expectedVersion) {
            return Effect.fail(ConcurrencyConflict.of(streamId, expectedVersion))
          }
          const stream = existing ?? { events: [], publishedVersion: 0 }
          stream.events.push(...events)
          streams.set(streamId, stream)
          pending.add(stream)
          return Effect.void
        }))
      ),
    unpublished: (limit) =>
      Effect.sync(() => {
        const found: Array<OrderEventEnvelope> = []
        for (const stream of pending) {
          if (found.length >= limit) break
          found.push(...stream.events.slice(stream.publishedVersion, stream.publishedVersion + limit - found.length))
        }
        return found
      }),
    markPublished: (streamId, version) =>
      Effect.sync(() => {
        const stream = streams.get(streamId)
        if (stream === undefined) return
        stream.publishedVersion = Math.max(stream.publishedVersion, version)
        if (stream.publishedVersion >= stream.events.length) pending.delete(stream)
      })
  }
})

export const layerMemory: Layer.Layer<EventStore> = Layer.effect(EventStore, makeMemory)
