import { describe, expect, it } from "@effect/vitest"
import * as EventStore from "@orders/domain/EventStore"
import { OrderId } from "@orders/domain/Order"
import { OrderProcessingFailed } from "@orders/domain/OrderEvent"
import * as OrderReadModel from "@orders/domain/OrderReadModel"
import { envelope, lifecycle } from "@orders/domain/testing/fixtures"
import { Effect, Either, Layer, Option } from "effect"
import { makeProjection } from "../src/Projector.js"

const Memory = Layer.merge(EventStore.layerMemory, OrderReadModel.layerMemory)

const rowOf = (orderId: OrderId) =>
  OrderReadModel.OrderReadModel.pipe(
    Effect.flatMap((readModel) => readModel.get(orderId)),
    Effect.map(Option.getOrUndefined)
  )

describe("Projector", () => {
  it.effect("applies each event once, however often it is delivered", () =>
    Effect.gen(function*() {
      const orderId = OrderId.make("r-1")
      const [created, requested] = lifecycle(orderId, 2)
      const apply = yield* makeProjection
      for (const event of [created!, created!, requested!, created!, requested!]) yield* apply(event)
      expect(yield* rowOf(orderId)).toMatchObject({ status: "processing", version: 2 })
    }).pipe(Effect.provide(Memory)))

  it.effect("fills a gap from the event store when an event overtakes an earlier one", () =>
    Effect.gen(function*() {
      const orderId = OrderId.make("r-2")
      const events = lifecycle(orderId, 3)
      const store = yield* EventStore.EventStore
      yield* store.append(orderId, 0, [events[0]!, events[1]!, events[2]!])
      const apply = yield* makeProjection
      yield* apply(events[0]!)
      yield* apply(events[2]!)
      expect(yield* rowOf(orderId)).toMatchObject({ status: "processed", version: 3 })
      yield* apply(events[1]!)
      expect(yield* rowOf(orderId)).toMatchObject({ status: "processed", version: 3 })
    }).pipe(Effect.provide(Memory)))

  it.effect("does not acknowledge an event that its read of the store does not contain yet", () =>
    Effect.gen(function*() {
      const orderId = OrderId.make("r-4")
      const events = lifecycle(orderId, 3)
      const store = yield* EventStore.EventStore
      // The store's answer lags: it shows version 1 while the bus already delivers version 3.
      yield* store.append(orderId, 0, [events[0]!])
      const apply = yield* makeProjection
      const stale = yield* Effect.either(apply(events[2]!))
      expect(Either.isLeft(stale) && stale.left).toMatchObject({ _tag: "StaleRead", version: 3, found: 1 })
      // Nothing saved short of the event: the event is delivered again, and then caught up in full.
      expect(yield* rowOf(orderId)).toBeUndefined()
    }).pipe(Effect.provide(Memory)))

  it.effect("reads an order's row once, then goes on from the row it wrote", () =>
    Effect.gen(function*() {
      const orderId = OrderId.make("r-5")
      const [created, requested, processed] = lifecycle(orderId, 3)
      let reads = 0
      const apply = yield* makeProjection.pipe(
        Effect.provideServiceEffect(
          OrderReadModel.OrderReadModel,
          Effect.map(OrderReadModel.OrderReadModel, (readModel) => ({
            ...readModel,
            get: (id: OrderId) => Effect.zipRight(Effect.sync(() => reads++), readModel.get(id))
          }))
        )
      )
      for (const event of [created!, requested!, requested!, processed!]) yield* apply(event)
      expect(reads).toBe(1)
      expect(yield* rowOf(orderId)).toMatchObject({ status: "processed", version: 3 })
    }).pipe(Effect.provide(Memory)))

  it.effect("never moves a row back when another projector moved it past the one it remembers", () =>
    Effect.gen(function*() {
      const orderId = OrderId.make("r-6")
      const events = lifecycle(orderId, 3)
      const mine = yield* makeProjection
      const other = yield* makeProjection
      yield* mine(events[0]!)
      // The partition moved to another server, which projected versions 2 and 3; back here, 2 is delivered again.
      yield* other(events[1]!)
      yield* other(events[2]!)
      yield* mine(events[1]!)
      expect(yield* rowOf(orderId)).toMatchObject({ status: "processed", version: 3 })
      yield* mine(events[2]!)
      expect(yield* rowOf(orderId)).toMatchObject({ status: "processed", version: 3 })
    }).pipe(Effect.provide(Memory)))

  it.effect("keeps the failure of a failed order, its code and its message", () =>
    Effect.gen(function*() {
      const orderId = OrderId.make("r-3")
      const [created, requested] = lifecycle(orderId, 2)
      const apply = yield* makeProjection
      for (const event of [created!, requested!]) yield* apply(event)
      yield* apply(
        envelope(3, OrderProcessingFailed.make({ orderId, reason: { code: "payment_declined", message: "declined" } }))
      )
      expect(yield* rowOf(orderId)).toMatchObject({
        status: "failed",
        failure: { code: "payment_declined", message: "declined" },
        version: 3
      })
    }).pipe(Effect.provide(Memory)))
})
