/**
 * Keeps the read model up to date from the bus: each event is applied once in
 * effect, whatever the bus redelivers, and a gap (an event that overtook an
 * earlier one) is filled from the event store, the source of truth.
 */
import { EventBus } from "@orders/domain/EventBus"
import { EventStore } from "@orders/domain/EventStore"
import type { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { OrderReadModel } from "@orders/domain/OrderReadModel"
import { project, projectAll } from "@orders/domain/Projection"
import { Effect, Layer, Option } from "effect"

export const ProjectorGroup = "projector"

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
        const history = yield* store.read(event.streamId)
        const caughtUp = projectAll(row, history.filter((stored) => stored.version <= event.version))
        if (caughtUp !== undefined) yield* readModel.save(caughtUp)
      }
    }
  })
})

export const ProjectorLive = Layer.scopedDiscard(Effect.gen(function*() {
  const bus = yield* EventBus
  const apply = yield* makeProjection
  yield* bus.subscribe(ProjectorGroup, apply)
  yield* Effect.logInfo(`projector consuming as group ${ProjectorGroup}`)
}))
