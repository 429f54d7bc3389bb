import { describe, expect, it } from "@effect/vitest"
import { CommandHandler } from "@orders/domain/CommandHandler"
import * as EventBus from "@orders/domain/EventBus"
import * as EventStore from "@orders/domain/EventStore"
import { CreateOrder, RequestProcessing } from "@orders/domain/OrderCommand"
import { EventMetadata, OrderId } from "@orders/domain/OrderEvent"
import { Duration, Effect, Layer } from "effect"
import { makeProcessor } from "../src/Processor.js"

const metadata = EventMetadata.make({ correlationId: "c-1", causationId: "c-1" })

const Memory = CommandHandler.Default.pipe(
  Layer.provideMerge(Layer.merge(EventStore.layerMemory, EventBus.layerMemory))
)

/** An order whose processing was requested; returns the request event. */
const requested = (orderId: OrderId) =>
  Effect.gen(function*() {
    const commands = yield* CommandHandler
    yield* commands.handle(CreateOrder.make({ orderId, name: "book" }), metadata)
    const { events } = yield* commands.handle(RequestProcessing.make({ orderId }), metadata)
    return events[0]
  })

const historyOf = (orderId: OrderId) => EventStore.EventStore.pipe(Effect.flatMap((store) => store.read(orderId)))

describe("Processor", () => {
  it.effect("completes a requested order, tracing the outcome to the request", () =>
    Effect.gen(function*() {
      const orderId = OrderId.make("p-1")
      const request = yield* requested(orderId)
      const process = yield* makeProcessor({ delay: Duration.zero, failureRate: 0 })
      yield* process(request)
      const history = yield* historyOf(orderId)
      expect(history.map((event) => event.type)).toEqual(["OrderCreated", "OrderProcessingRequested", "OrderProcessed"])
      expect(history[2]?.metadata).toEqual({ correlationId: "c-1", causationId: request.eventId })
    }).pipe(Effect.provide(Memory)))

  it.effect("records a failure when the mocked work fails", () =>
    Effect.gen(function*() {
      const orderId = OrderId.make("p-2")
      const process = yield* makeProcessor({ delay: Duration.zero, failureRate: 1 })
      yield* process(yield* requested(orderId))
      const history = yield* historyOf(orderId)
      expect(history[2]?.data).toMatchObject({ _tag: "OrderProcessingFailed", reason: "mock processing failed" })
    }).pipe(Effect.provide(Memory)))

  it.effect("does nothing more when a request is delivered again", () =>
    Effect.gen(function*() {
      const orderId = OrderId.make("p-3")
      const request = yield* requested(orderId)
      const process = yield* makeProcessor({ delay: Duration.zero, failureRate: 0 })
      yield* process(request)
      yield* process(request)
      expect((yield* historyOf(orderId)).map((event) => event.version)).toEqual([1, 2, 3])
    }).pipe(Effect.provide(Memory)))

  it.effect("ignores every other event", () =>
    Effect.gen(function*() {
      const orderId = OrderId.make("p-4")
      const commands = yield* CommandHandler
      const { events } = yield* commands.handle(CreateOrder.make({ orderId, name: "book" }), metadata)
      const process = yield* makeProcessor({ delay: Duration.zero, failureRate: 0 })
      yield* process(events[0])
      expect(yield* historyOf(orderId)).toHaveLength(1)
    }).pipe(Effect.provide(Memory)))
})
