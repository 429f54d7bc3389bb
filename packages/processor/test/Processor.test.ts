import { describe, expect, it } from "@effect/vitest"
import { CommandHandler } from "@orders/domain/CommandHandler"
import * as EventStore from "@orders/domain/EventStore"
import { OrderId } from "@orders/domain/Order"
import { CreateOrder, RequestProcessing } from "@orders/domain/OrderCommand"
import { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { commandHandlerInMemory, metadata } from "@orders/domain/testing/fixtures"
import { Duration, Effect, Either } from "effect"
import { makeProcessor } from "../src/Processor.js"

const Memory = commandHandlerInMemory()

/** An order whose processing was requested; returns the request event. */
const requested = (orderId: OrderId) =>
  Effect.gen(function*() {
    const commands = yield* CommandHandler
    yield* commands.handle(CreateOrder.make({ orderId, name: "book" }), metadata)
    const { events } = yield* commands.handle(RequestProcessing.make({ orderId }), metadata)
    return events[0]
  })

const historyOf = (orderId: OrderId) => EventStore.EventStore.pipe(Effect.flatMap((store) => store.read(orderId)))

const immediate = { delay: Duration.zero, failureRate: 0 }

describe("Processor", () => {
  it.effect("completes a requested order, tracing the outcome to the request", () =>
    Effect.gen(function*() {
      const orderId = OrderId.make("p-1")
      const request = yield* requested(orderId)
      const process = yield* makeProcessor(immediate)
      yield* process(request)
      const history = yield* historyOf(orderId)
      expect(history.map((event) => event.type)).toEqual(["OrderCreated", "OrderProcessingRequested", "OrderProcessed"])
      expect(history[2]?.metadata).toEqual({
        correlationId: metadata.correlationId,
        causationId: request.eventId,
        append: { first: 3, last: 3 }
      })
    }).pipe(Effect.provide(Memory)))

  it.effect("records a failure when the mocked work fails", () =>
    Effect.gen(function*() {
      const orderId = OrderId.make("p-2")
      const process = yield* makeProcessor({ delay: Duration.zero, failureRate: 1 })
      yield* process(yield* requested(orderId))
      const history = yield* historyOf(orderId)
      expect(history[2]?.data).toMatchObject({
        _tag: "OrderProcessingFailed",
        reason: { code: "simulated_failure", message: "mock processing failed" }
      })
    }).pipe(Effect.provide(Memory)))

  it.effect("does nothing more when a request is delivered again", () =>
    Effect.gen(function*() {
      const orderId = OrderId.make("p-3")
      const request = yield* requested(orderId)
      const process = yield* makeProcessor(immediate)
      yield* process(request)
      yield* process(request)
      expect((yield* historyOf(orderId)).map((event) => event.version)).toEqual([1, 2, 3])
    }).pipe(Effect.provide(Memory)))

  it.effect("does not acknowledge a request that its read of the store does not show yet", () =>
    Effect.gen(function*() {
      const orderId = OrderId.make("p-5")
      const request = yield* requested(orderId)
      // The same request one version further on: as if the store's answer lagged behind the bus.
      const ahead = OrderEventEnvelope.make({ ...request, version: 3, eventId: crypto.randomUUID() })
      const process = yield* makeProcessor(immediate)
      const outcome = yield* Effect.either(process(ahead))
      expect(Either.isLeft(outcome) && outcome.left).toMatchObject({ _tag: "StaleRead", version: 3, found: 2 })
      expect(yield* historyOf(orderId)).toHaveLength(2)
    }).pipe(Effect.provide(Memory)))

  it.effect("ignores every other event", () =>
    Effect.gen(function*() {
      const orderId = OrderId.make("p-4")
      const commands = yield* CommandHandler
      const { events } = yield* commands.handle(CreateOrder.make({ orderId, name: "book" }), metadata)
      const process = yield* makeProcessor(immediate)
      yield* process(events[0])
      expect(yield* historyOf(orderId)).toHaveLength(1)
    }).pipe(Effect.provide(Memory)))
})
