/**
 * Keeps the read model up to date from the bus: each event is applied once in
 * effect, whatever the bus redelivers, and a gap (an event that overtook an
 * earlier one, or followed a parked one) is filled from the event store, the
 * source of truth.
 */
import { EventBus } from "@orders/domain/EventBus"
import { EventStore } from "@orders/domain/EventStore"
import { StaleRead } from "@orders/domain/OrderError"
import type { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { OrderReadModel } from "@orders/domain/OrderReadModel"
import { project, projectAll } from "@orders/domain/Projection"
import { Workers } from "@orders/infra/Workers"
import { Config, Effect, Layer, Option } from "effect"

/** The projector's consumer group: namespaced, so that it cannot collide with another service's on a shared cluster. */
export const ProjectorGroup = Config.string("PROJECTOR_GROUP").pipe(Config.withDefault("orders.projector"))

export const makeProjection = Effect.gen(function*() {
  const readModel = yield* OrderReadModel
  const store = yield* EventStore
  return Effect.fn("Projector.apply")(function*(event: OrderEventEnvelope) {
    const row = Option.getOrUndefined(yield* readModel.get(event.streamId))
    const step = project(row, event)
    switch (step._tag) {
      case "AlreadyApplied":
        return
      case "Applied":
        return yield* readModel.save(step.order)
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
        if (caughtUp !== undefined) yield* readModel.save(caughtUp)
      }
    }
  })
})

export const ProjectorLive = Layer.scopedDiscard(Effect.gen(function*() {
  const bus = yield* EventBus
  const workers = yield* Workers
  const group = yield* ProjectorGroup
  const subscription = yield* bus.subscribe(group, yield* makeProjection)
  yield* workers.run(`projector (group ${group})`, subscription.stopped)
  yield* Effect.logInfo(`projector consuming as group ${group}`)
}))
