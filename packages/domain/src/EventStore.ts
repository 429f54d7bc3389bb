/**
 * Port: the event store, source of truth of every order.
 *
 * @since 0.1.0
 */
import type { Array as Arr } from "effect"
import { Clock, Context, Duration, Effect, Layer } from "effect"
import type { OrderId } from "./Order.js"
import type { AppendOutcomeUnknown, ServiceUnavailable } from "./OrderError.js"
import { ConcurrencyConflict } from "./OrderError.js"
import type { OrderEventEnvelope } from "./OrderEvent.js"

export interface EventStoreShape {
  /** The stream's events in version order; empty when the stream does not exist. */
  readonly read: (streamId: OrderId) => Effect.Effect<ReadonlyArray<OrderEventEnvelope>, ServiceUnavailable>
  /**
   * The stream as far as this process knows it, asking the server only for
   * the events it lacks up to version `through` (default 0: not at all): a
   * prefix of what `read` returns, holding at least the events up to
   * `through` that exist, possibly short of the latest ones (empty for a
   * stream it never saw). Never wrong about the events it returns, so a
   * decision made on it is safe to append: a stale prefix meets a
   * `ConcurrencyConflict`. Keeps reads off the command path, and a consumer
   * that knows which version it was delivered from looking for more.
   */
  readonly readKnown: (
    streamId: OrderId,
    through?: number
  ) => Effect.Effect<ReadonlyArray<OrderEventEnvelope>, ServiceUnavailable>
  /**
   * Takes note of events this store committed, as a consumer was delivered
   * them, so that `readKnown` and the next append on them need not ask the
   * server. Only whole appends count: those all of whose events (by
   * `metadata.append`) are among `events`; the rest is ignored.
   */
  readonly learn: (events: ReadonlyArray<OrderEventEnvelope>) => Effect.Effect<void>
  /**
   * Appends all of `events` or none, and keeps them in the outbox until they
   * are marked published. Fails with `ConcurrencyConflict` unless the stream
   * is at `expectedVersion` (0: it does not exist yet). The events' versions
   * must follow on from `expectedVersion` without gaps, and name this append
   * as theirs when they carry `metadata.append`. Uninterruptible once
   * started. `AppendOutcomeUnknown` when the store did not say whether the
   * append was applied (a connection lost mid-write): if it was, its events
   * are in the outbox and reach the bus.
   */
  readonly append: (
    streamId: OrderId,
    expectedVersion: number,
    events: Arr.NonEmptyReadonlyArray<OrderEventEnvelope>
  ) => Effect.Effect<void, ConcurrencyConflict | ServiceUnavailable | AppendOutcomeUnknown>
  /**
   * Appended events not yet marked published (the outbox), oldest append
   * first, the events of at most `limit` appends, whole, in version order
   * within each stream. Bounded whatever the backlog. An append younger than
   * the store's grace (a few seconds) is held back: its writer is publishing it.
   */
  readonly unpublished: (limit: number) => Effect.Effect<ReadonlyArray<OrderEventEnvelope>, ServiceUnavailable>
  /**
   * Records that exactly these events (of one stream, contiguous versions)
   * reached the bus. Every other event stays unpublished, earlier ones included;
   * an append leaves the outbox once all of its events are marked.
   */
  readonly markPublished: (
    events: Arr.NonEmptyReadonlyArray<OrderEventEnvelope>
  ) => Effect.Effect<void, ServiceUnavailable>
}

export class EventStore extends Context.Tag("orders/EventStore")<EventStore, EventStoreShape>() {}

/**
 * Checks the invariant every adapter relies on: versions follow on from the
 * expected one, and an event that names its append names this one (`learn`
 * trusts it).
 */
export const assertContiguous = (
  streamId: OrderId,
  expectedVersion: number,
  events: ReadonlyArray<OrderEventEnvelope>
): Effect.Effect<void> => {
  const first = expectedVersion + 1
  const last = expectedVersion + events.length
  return events.every((event, i) =>
      event.streamId === streamId && event.version === first + i &&
      (event.metadata.append === undefined ||
        (event.metadata.append.first === first && event.metadata.append.last === last))
    )
    ? Effect.void
    : Effect.dieMessage(`events appended to '${streamId}' must have versions ${first}..${last}, and name that append`)
}

/** How long `unpublished` leaves a fresh append to the writer that is publishing it, unless a store is told otherwise. */
export const defaultGrace: Duration.Duration = Duration.seconds(5)

/** Options of the in-memory store. */
export interface MemoryOptions {
  /** How long `unpublished` holds back a fresh append (default `defaultGrace`). */
  readonly grace?: Duration.DurationInput
}

/** An append whose events are not all marked published. */
interface PendingAppend {
  readonly events: Arr.NonEmptyReadonlyArray<OrderEventEnvelope>
  /** When `unpublished` may hand it out, in clock milliseconds. */
  readonly due: number
}

const appendKey = (streamId: OrderId, previous: number) => `${streamId}:${previous}`

/**
 * The event store kept in process memory: same guarantees as the real one, lost
 * on exit. Each operation is one synchronous step, so appends cannot interleave
 * and cannot be interrupted half done. The outbox is a map in append order, so
 * the relay's poll costs what it hands out, not the whole store.
 */
export const makeMemory = (options: MemoryOptions = {}): Effect.Effect<EventStoreShape> =>
  Effect.sync(() => {
    const grace = Duration.toMillis(options.grace ?? defaultGrace)
    const streams = new Map<OrderId, Array<OrderEventEnvelope>>()
    /** Keyed `<streamId>:<previous version>`, oldest append first. */
    const outbox = new Map<string, PendingAppend>()
    const read = (streamId: OrderId) => Effect.sync(() => [...(streams.get(streamId) ?? [])])
    return {
      read,
      // Everything is known in memory.
      readKnown: read,
      learn: () => Effect.void,
      append: (streamId, expectedVersion, events) =>
        assertContiguous(streamId, expectedVersion, events).pipe(
          Effect.zipRight(Clock.currentTimeMillis),
          Effect.flatMap((now) => {
            const stream = streams.get(streamId) ?? []
            if (stream.length !== expectedVersion) return Effect.fail(ConcurrencyConflict.of(streamId, expectedVersion))
            stream.push(...events)
            streams.set(streamId, stream)
            outbox.set(appendKey(streamId, expectedVersion), { events, due: now + grace })
            return Effect.void
          })
        ),
      unpublished: (limit) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const found: Array<OrderEventEnvelope> = []
          let appends = 0
          // Appends are due in the order they were made: the first one not due ends the batch.
          for (const pending of outbox.values()) {
            if (appends >= limit || pending.due > now) break
            found.push(...pending.events)
            appends++
          }
          return found
        }),
      markPublished: (events) =>
        Effect.sync(() => {
          const published = new Set(events.map((event) => appendKey(event.streamId, event.version)))
          for (const event of events) {
            const key = appendKey(event.streamId, event.version - 1)
            const pending = outbox.get(key)
            // An append leaves the outbox once all of its events are published.
            if (pending?.events.every((mine) => published.has(appendKey(mine.streamId, mine.version)))) {
              outbox.delete(key)
            }
          }
        })
    }
  })

export const layerMemory: Layer.Layer<EventStore> = Layer.effect(EventStore, makeMemory())
