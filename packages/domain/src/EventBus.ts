/**
 * Port: the event bus that carries appended events to the projector and the
 * processor.
 *
 * @since 0.1.0
 */
import type { Scope } from "effect"
import { Context, Deferred, Duration, Effect, Layer, Schedule } from "effect"
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

/**
 * The bus kept in process memory: one log, and per group the offset of the
 * next event to deliver, which advances only after the handler succeeded.
 * Delivery within a group is sequential, hence in order per order id.
 */
export const makeMemory: Effect.Effect<EventBusShape> = Effect.gen(function*() {
  const log: Array<OrderEventEnvelope> = []
  const offsets = new Map<string, number>()
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

  const consume = <R>(group: string, handler: EventHandler<R>): Effect.Effect<never, never, R> =>
    Effect.suspend(() => {
      const offset = offsets.get(group) ?? 0
      const event = log[offset]
      if (event === undefined) return Deferred.await(appended)
      return handleUntilDone(handler, group, event).pipe(Effect.tap(() => offsets.set(group, offset + 1)))
    }).pipe(Effect.forever)

  return {
    publish,
    subscribe: (group, handler) => Effect.asVoid(Effect.forkScoped(consume(group, handler)))
  }
})

export const layerMemory: Layer.Layer<EventBus> = Layer.effect(EventBus, makeMemory)
