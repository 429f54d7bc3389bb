/**
 * Keeps the read model up to date from the bus: each event is applied once in
 * effect, whatever the bus redelivers, and a gap (an event that overtook an
 * earlier one, or followed a parked one) is filled from the event store, the
 * source of truth.
 */
import { EventBus } from "@orders/domain/EventBus"
import { EventStore } from "@orders/domain/EventStore"
import type { Order } from "@orders/domain/Order"
import { StaleRead } from "@orders/domain/OrderError"
import type { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { OrderReadModel } from "@orders/domain/OrderReadModel"
import { project, projectAll } from "@orders/domain/Projection"
import { requireMembership } from "@orders/infra/Health"
import { Workers } from "@orders/infra/Workers"
import { Config, DateTime, Effect, Layer, Metric, MetricBoundaries, Option } from "effect"

/** The projector's consumer group: namespaced, so that it cannot collide with another service's on a shared cluster. */
export const ProjectorGroup = Config.string("PROJECTOR_GROUP").pipe(Config.withDefault("orders.projector"))

/** From an event's append to the write of the row it brought up to date: how far behind queries are. 5 ms to 41 s. */
export const projectionLag = Metric.histogram(
  "orders_projection_lag_seconds",
  MetricBoundaries.exponential({ start: 0.005, factor: 2, count: 14 }),
  "Time from an event's append to the read-model write that applied it"
)

export const makeProjection = Effect.gen(function*() {
  const readModel = yield* OrderReadModel
  const store = yield* EventStore
  /** Writes the row that `event` brought up to date. */
  const save = (order: Order, event: OrderEventEnvelope) =>
    readModel.save(order).pipe(
      Effect.withSpan("Projector.save", { attributes: { streamId: order.id, version: order.version } }),
      Effect.zipRight(DateTime.now),
      Effect.flatMap((now) => Metric.update(projectionLag, DateTime.distance(event.occurredAt, now) / 1_000))
    )
  return Effect.fn("Projector.apply")(function*(event: OrderEventEnvelope) {
    // Orders that another server changed: this one's next command on them then needs no read of the store.
    yield* store.learn([event])
    const row = Option.getOrUndefined(yield* readModel.get(event.streamId))
    const step = project(row, event)
    switch (step._tag) {
      case "AlreadyApplied":
        return
      case "Applied":
        return yield* save(step.order, event)
      case "Gap": {
        yield* Effect.logInfo("gap in the stream; catching up from the event store").pipe(
          Effect.annotateLogs({ streamId: event.streamId, lastVersion: step.lastVersion, version: event.version })
        )
        const history = (yield* store.read(event.streamId)).filter((stored) => stored.version <= event.version)
        // Never acknowledge an event that this read of the store does not contain.
        if (history.length < event.version) {
          return yield* new StaleRead({ streamId: event.streamId, version: event.version, found: history.length })
        }
        const caughtUp = projectAll(row, history)
        if (caughtUp !== undefined) yield* save(caughtUp, event)
      }
    }
  })
})

export const ProjectorLive = Layer.scopedDiscard(Effect.gen(function*() {
  const bus = yield* EventBus
  const workers = yield* Workers
  const group = yield* ProjectorGroup
  const subscription = yield* bus.subscribe(group, yield* makeProjection)
  yield* requireMembership(group, subscription)
  yield* workers.run(`projector (group ${group})`, subscription.stopped)
  yield* Effect.logInfo(`projector consuming as group ${group}`)
}))
