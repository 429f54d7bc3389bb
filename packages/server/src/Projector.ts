/**
 * Keeps the read model up to date from the bus: each event is applied once in
 * effect, whatever the bus redelivers, and a gap (an event that overtook an
 * earlier one, or followed a parked one) is filled from the event store, the
 * source of truth.
 */
import { EventBus } from "@orders/domain/EventBus"
import { EventStore } from "@orders/domain/EventStore"
import type { Order, OrderId } from "@orders/domain/Order"
import { StaleRead } from "@orders/domain/OrderError"
import type { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { OrderReadModel } from "@orders/domain/OrderReadModel"
import { project, projectAll } from "@orders/domain/Projection"
import { traced } from "@orders/domain/Tracing"
import { requireMembership } from "@orders/infra/Health"
import { Workers } from "@orders/infra/Workers"
import { Cache, Config, DateTime, Duration, Effect, Exit, Layer, Metric, MetricBoundaries, Option } from "effect"

/** The projector's consumer group: namespaced, so that it cannot collide with another service's on a shared cluster. */
export const ProjectorGroup = Config.string("PROJECTOR_GROUP").pipe(Config.withDefault("orders.projector"))

/** From an event's append to the write of the row it brought up to date: how far behind queries are. 5 ms to 41 s. */
export const projectionLag = Metric.histogram(
  "orders_projection_lag_seconds",
  MetricBoundaries.exponential({ start: 0.005, factor: 2, count: 14 }),
  "Time from an event's append to the read-model write that applied it"
)

/** Rows the projector remembers having written: about 3 MB. */
const REMEMBERED_ROWS = 10_000

export const makeProjection = Effect.gen(function*() {
  const readModel = yield* OrderReadModel
  const store = yield* EventStore
  /*
   * The row each order had when this projector last read or wrote it, so that
   * the next event on it needs no read of the read model. A remembered row may
   * be older than the table's (another server projected since): the order at
   * its version is still what the events say, the event after it then shows
   * a gap, and a save never moves a row back.
   */
  const rows = yield* Cache.makeWith({
    capacity: REMEMBERED_ROWS,
    lookup: (orderId: OrderId) => readModel.get(orderId),
    timeToLive: (exit) => Exit.isSuccess(exit) ? Duration.infinity : Duration.zero
  })
  /** Writes the row that `event` brought up to date. */
  const save = (order: Order, event: OrderEventEnvelope) =>
    readModel.save(order).pipe(
      traced("Projector.save", { attributes: { streamId: order.id, version: order.version } }),
      Effect.zipRight(rows.set(order.id, Option.some(order))),
      Effect.zipRight(DateTime.now),
      Effect.flatMap((now) => Metric.update(projectionLag, DateTime.distance(event.occurredAt, now) / 1_000))
    )
  return Effect.fnUntraced(function*(event: OrderEventEnvelope) {
    // Orders that another server changed: this one's next command on them then needs no read of the store.
    yield* store.learn([event])
    const row = Option.getOrUndefined(yield* rows.get(event.streamId))
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
  }, traced("Projector.apply"))
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
