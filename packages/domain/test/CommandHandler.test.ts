import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck, Fiber, Layer, TestClock } from "effect"
import { CommandHandler, publishTimeout } from "../src/CommandHandler.js"
import * as EventBus from "../src/EventBus.js"
import * as EventStore from "../src/EventStore.js"
import { CreateOrder, RequestProcessing } from "../src/OrderCommand.js"
import { ServiceUnavailable } from "../src/OrderError.js"
import { metadata, uniqueOrderId } from "./fixtures.js"
import { commandArbitrary } from "./generators.js"

const memory = CommandHandler.Default.pipe(
  Layer.provideMerge(Layer.merge(EventStore.layerMemory, EventBus.layerMemory))
)

/** A bus whose broker is down: every publish fails. */
const unreachableBus = Layer.succeed(EventBus.EventBus, {
  publish: () => Effect.fail(new ServiceUnavailable({ service: "test bus", message: "down" })),
  subscribe: () => Effect.fail(new ServiceUnavailable({ service: "test bus", message: "down" }))
})

/** A bus whose broker hangs: publish never answers. */
const hangingBus = Layer.succeed(EventBus.EventBus, {
  publish: () => Effect.never,
  subscribe: () => Effect.never
})

describe("CommandHandler", () => {
  it.effect("creates an order, stores and publishes its event, and marks it published", () =>
    Effect.gen(function*() {
      const handler = yield* CommandHandler
      const store = yield* EventStore.EventStore
      const orderId = uniqueOrderId()
      const result = yield* handler.handle(CreateOrder.make({ orderId, name: "book" }), metadata)
      expect(result.order).toMatchObject({ id: orderId, name: "book", status: "new", version: 1 })
      const [event] = yield* store.read(orderId)
      expect(event).toMatchObject({ streamId: orderId, version: 1, type: "OrderCreated", metadata })
      expect(yield* store.unpublished(10)).toEqual([])
    }).pipe(Effect.provide(memory)))

  it.effect("appends nothing when the decision is a refusal", () =>
    Effect.gen(function*() {
      const handler = yield* CommandHandler
      const store = yield* EventStore.EventStore
      const orderId = uniqueOrderId()
      const refused = yield* Effect.either(handler.handle(RequestProcessing.make({ orderId }), metadata))
      expect(Either.isLeft(refused) && refused.left._tag).toBe("OrderNotFound")
      yield* handler.handle(CreateOrder.make({ orderId, name: "book" }), metadata)
      const duplicate = yield* Effect.either(handler.handle(CreateOrder.make({ orderId, name: "pen" }), metadata))
      expect(Either.isLeft(duplicate) && duplicate.left._tag).toBe("OrderAlreadyExists")
      expect((yield* store.read(orderId)).map((event) => event.type)).toEqual(["OrderCreated"])
    }).pipe(Effect.provide(memory)))

  it.effect("lets one of two concurrent identical commands through", () =>
    Effect.gen(function*() {
      const handler = yield* CommandHandler
      const store = yield* EventStore.EventStore
      const orderId = uniqueOrderId()
      yield* handler.handle(CreateOrder.make({ orderId, name: "book" }), metadata)
      const results = yield* Effect.all(
        [1, 2].map(() => Effect.either(handler.handle(RequestProcessing.make({ orderId }), metadata))),
        { concurrency: "unbounded" }
      )
      expect(results.filter(Either.isRight)).toHaveLength(1)
      expect((yield* store.read(orderId)).map((event) => event.version)).toEqual([1, 2])
    }).pipe(Effect.provide(memory)))

  it.effect("accepts the command when the bus is down, leaving the event in the outbox", () =>
    Effect.gen(function*() {
      const handler = yield* CommandHandler
      const store = yield* EventStore.EventStore
      const orderId = uniqueOrderId()
      const result = yield* handler.handle(CreateOrder.make({ orderId, name: "book" }), metadata)
      expect(result.order.status).toBe("new")
      expect((yield* store.unpublished(10)).map((event) => event.streamId)).toEqual([orderId])
    }).pipe(
      Effect.provide(CommandHandler.Default.pipe(
        Layer.provideMerge(Layer.merge(EventStore.layerMemory, unreachableBus))
      ))
    ))

  it.effect("answers within the publish timeout when the bus hangs, leaving the event in the outbox", () =>
    Effect.gen(function*() {
      const handler = yield* CommandHandler
      const store = yield* EventStore.EventStore
      const orderId = uniqueOrderId()
      const fiber = yield* Effect.fork(handler.handle(CreateOrder.make({ orderId, name: "book" }), metadata))
      yield* TestClock.adjust(publishTimeout)
      const result = yield* Fiber.join(fiber)
      expect(result.order.status).toBe("new")
      expect((yield* store.unpublished(10)).map((event) => event.streamId)).toEqual([orderId])
    }).pipe(
      Effect.provide(CommandHandler.Default.pipe(Layer.provideMerge(Layer.merge(EventStore.layerMemory, hangingBus))))
    ))

  it.effect.prop("versions of the appended events go 1, 2, 3... whatever commands come", [
    FastCheck.array(commandArbitrary, { minLength: 1, maxLength: 12 })
  ], ([commands]) =>
    Effect.gen(function*() {
      const handler = yield* CommandHandler
      const store = yield* EventStore.EventStore
      const orderId = uniqueOrderId()
      for (const command of commands) yield* Effect.either(handler.handle({ ...command, orderId }, metadata))
      const versions = (yield* store.read(orderId)).map((event) => event.version)
      expect(versions).toEqual(versions.map((_, i) => i + 1))
    }).pipe(Effect.provide(memory)))
})
