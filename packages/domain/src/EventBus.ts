/**
 * Port: the event bus that carries appended events to the projector and the
 * processor.
 *
 * @since 0.1.0
 */
import type { Scope } from "effect"
import { Context, Deferred, Duration, Effect, FiberSet, Layer, Schedule } from "effect"
import type { ServiceUnavailable } from "./OrderError.js"
import type { OrderEventEnvelope } from "./OrderEvent.js"

/** What a subscriber does with one event. A failure means "not handled": the event is delivered again. */
export type EventHandler<R> = (event: OrderEventEnvelope) => Effect.Effect<void, unknown, R>

export interface EventBusShape {
  readonly publish: (events: ReadonlyArray<OrderEventEnvelope>) => Effect.Effect<void, ServiceUnavailable>
  /**
   * Consumes as a member of the consumer group `group` for as long as the Scope
   * lives, starting where the group left off (a new group starts at the
   * beginning). Every event is delivered at least once, and the events of one
   * order in version order.
   */
  readonly subscribe: <R>(
    group: string,
    handler: EventHandler<R>
  ) => Effect.Effect<void, ServiceUnavailable, R | Scope.Scope>
}

export class EventBus extends Context.Tag("orders/EventBus")<EventBus, EventBusShape>() {}

/** Redelivery of a failed event: quick at first, then at most every 5 seconds, forever. */
export const redeliverySchedule = Schedule.exponential(Duration.millis(50)).pipe(
  Schedule.union(Schedule.spaced(Duration.seconds(5)))
)

/**
 * Runs a handler until it succeeds, logging each failure. Interrupting it
 * leaves the event unacknowledged, so it is delivered again later.
 */
export const handleUntilDone = <R>(handler: EventHandler<R>, group: string, event: OrderEventEnvelope) =>
  handler(event).pipe(
    Effect.tapError((error) =>
      Effect.logWarning("event handler failed; the event will be delivered again", error).pipe(
        Effect.annotateLogs({ group, eventId: event.eventId, streamId: event.streamId, version: event.version })
      )
    ),
    Effect.retry(redeliverySchedule),
    Effect.orDie
  )

/** How many orders' events one consumer group of the in-memory bus handles at once. */
const memoryConcurrency = 64

/**
 * The bus kept in process memory: one log, and per group the offset up to
 * which every event was handled. A group handles the events of different
 * orders concurrently (a slow handler, like the processor's mock work, then
 * holds up only its own order) and those of one order one after the other.
 * Its offset advances only past events whose handler succeeded, so a group
 * that subscribes again gets every unfinished event again.
 */
export const makeMemory: Effect.Effect<EventBusShape> = Effect.gen(function*() {
  const log: Array<OrderEventEnvelope> = []
  const committed = new Map<string, number>()
  let appended = yield* Deferred.make<void>()

  const publish: EventBusShape["publish"] = (events) =>
    Effect.suspend(() => {
      if (events.length === 0) return Effect.void
      log.push(...events)
      const wake = appended
      return Deferred.make<void>().pipe(
        Effect.tap((next) => {
          appended = next
        }),
        Effect.zipRight(Deferred.succeed(wake, undefined))
      )
    })

  const consume = <R>(group: string, handler: EventHandler<R>) =>
    Effect.gen(function*() {
      const slots = yield* Effect.makeSemaphore(memoryConcurrency)
      const handling = yield* FiberSet.make<void>()
      const inFlight = new Set<number>()
      /** Per order, the completion of its latest dispatched event: the next one waits for it. */
      const latest = new Map<string, Deferred.Deferred<void>>()
      let next = committed.get(group) ?? 0

      const handle = (event: OrderEventEnvelope, offset: number, previous: Deferred.Deferred<void> | undefined) =>
        Effect.gen(function*() {
          const done = yield* Deferred.make<void>()
          latest.set(event.streamId, done)
          inFlight.add(offset)
          yield* FiberSet.run(
            handling,
            Effect.gen(function*() {
              if (previous !== undefined) yield* Deferred.await(previous)
              yield* handleUntilDone(handler, group, event)
              inFlight.delete(offset)
              committed.set(group, inFlight.size === 0 ? next : Math.min(...inFlight))
              if (latest.get(event.streamId) === done) latest.delete(event.streamId)
              yield* Deferred.succeed(done, undefined)
            }).pipe(Effect.ensuring(slots.release(1)))
          )
        })

      while (true) {
        const event = log[next]
        if (event === undefined) {
          yield* Deferred.await(appended)
          continue
        }
        yield* slots.take(1)
        const offset = next++
        yield* handle(event, offset, latest.get(event.streamId))
      }
    })

  return {
    publish,
    subscribe: (group, handler) => Effect.asVoid(Effect.forkScoped(Effect.scoped(consume(group, handler))))
  }
})

export const layerMemory: Layer.Layer<EventBus> = Layer.effect(EventBus, makeMemory)
