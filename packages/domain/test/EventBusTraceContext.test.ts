import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Layer, Option, Tracer } from "effect"
import { CommandHandler } from "../src/CommandHandler.js"
import * as EventBus from "../src/EventBus.js"
import { OrderId } from "../src/Order.js"
import { CompleteProcessing, CreateOrder, RequestProcessing } from "../src/OrderCommand.js"
import type { OrderEventEnvelope } from "../src/OrderEvent.js"
import { decodeEvent, encodeEvent } from "../src/OrderEvent.js"
import { fastDeliveryPolicy } from "./contract/EventBusContract.js"
import { commandHandlerInMemory, lifecycle, metadata, uniqueOrderId } from "./fixtures.js"

const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
const spanId = "00f067aa0ba902b7"

const propagating = Layer.succeed(EventBus.TraceContextPropagation, true)

/** The trace id in a `traceparent`. */
const traceOf = (traceparent: string | undefined) => traceparent?.split("-")[1]

describe("W3C trace context", () => {
  it("formats a span as a traceparent and parses it back", () => {
    const parsed = EventBus.parseTraceparent(`00-${traceId}-${spanId}-01`)
    expect(Option.map(parsed, (span) => [span.traceId, span.spanId, span.sampled])).toEqual(
      Option.some([traceId, spanId, true])
    )
    expect(EventBus.formatTraceparent(Tracer.externalSpan({ traceId, spanId, sampled: false }))).toBe(
      `00-${traceId}-${spanId}-00`
    )
  })

  it("accepts a later version with more fields, as the specification asks", () => {
    expect(Option.isSome(EventBus.parseTraceparent(`01-${traceId}-${spanId}-01-more`))).toBe(true)
  })

  const invalid: ReadonlyArray<readonly [string, string | undefined]> = [
    ["nothing", undefined],
    ["an empty string", ""],
    ["version ff", `ff-${traceId}-${spanId}-01`],
    ["extra fields on version 00", `00-${traceId}-${spanId}-01-more`],
    ["a trace id of zeros", `00-${"0".repeat(32)}-${spanId}-01`],
    ["a span id of zeros", `00-${traceId}-${"0".repeat(16)}-01`],
    ["upper-case hex", `00-${traceId.toUpperCase()}-${spanId}-01`],
    ["a short trace id", `00-${traceId.slice(1)}-${spanId}-01`]
  ]
  for (const [what, traceparent] of invalid) {
    it(`ignores ${what}`, () => expect(EventBus.parseTraceparent(traceparent)).toEqual(Option.none()))
  }

  it("gives no traceparent for a span without W3C ids (a disabled tracer's)", () => {
    expect(EventBus.formatTraceparent(Tracer.externalSpan({ traceId: "noop", spanId: "noop" }))).toBeUndefined()
  })

  it.effect("carries the current span's context only where propagation is on", () =>
    Effect.gen(function*() {
      const outside = yield* EventBus.currentTraceparent.pipe(Effect.withSpan("work"))
      const inside = yield* Effect.gen(function*() {
        const span = yield* Effect.currentSpan
        return { span, traceparent: yield* EventBus.currentTraceparent }
      }).pipe(Effect.withSpan("work"), Effect.provide(propagating))
      expect(outside).toBeUndefined()
      expect(inside.traceparent).toBe(`00-${inside.span.traceId}-${inside.span.spanId}-01`)
    }))
})

describe("events and their trace context", () => {
  it.effect("stores the command's trace context on its events, and none without propagation", () =>
    Effect.gen(function*() {
      const commands = yield* CommandHandler
      const traced = uniqueOrderId("traced")
      const { events, request } = yield* Effect.gen(function*() {
        const request = yield* Effect.currentSpan
        const { events } = yield* commands.handle(CreateOrder.make({ orderId: traced, name: "book" }), metadata).pipe(
          Effect.provide(propagating)
        )
        return { events, request }
      }).pipe(Effect.withSpan("request"))
      expect(traceOf(events[0].metadata.traceparent)).toBe(request.traceId)
      // Not the request's own span: the command's, inside it.
      expect(events[0].metadata.traceparent).not.toContain(request.spanId)

      const untraced = yield* commands.handle(CreateOrder.make({ orderId: uniqueOrderId(), name: "book" }), metadata)
      expect(untraced.events[0].metadata.traceparent).toBeUndefined()
    }).pipe(Effect.provide(commandHandlerInMemory())))

  it.effect("decodes a stored event without a traceparent, and keeps one that has it", () =>
    Effect.gen(function*() {
      const [created] = lifecycle(OrderId.make("stored-before-tracing"), 1)
      const { traceparent: _, ...withoutTrace } = encodeEvent(created!).metadata
      const decoded = yield* decodeEvent({ ...encodeEvent(created!), metadata: withoutTrace })
      expect(decoded.metadata.traceparent).toBeUndefined()
      const traceparent = `00-${traceId}-${spanId}-01`
      const withTrace = yield* decodeEvent({ ...encodeEvent(created!), metadata: { ...withoutTrace, traceparent } })
      expect(withTrace.metadata.traceparent).toBe(traceparent)
    }))

  it.scoped("delivers an event in a consumer span under its command's span, and the reaction joins that trace", () =>
    Effect.gen(function*() {
      const commands = yield* CommandHandler
      const bus = yield* EventBus.EventBus
      const orderId = uniqueOrderId("chain")
      const delivery = yield* Deferred.make<{ readonly span: Tracer.Span; readonly event: OrderEventEnvelope }>()
      const outcome = yield* Deferred.make<OrderEventEnvelope>()
      yield* bus.subscribe("reactor", (event) =>
        Effect.gen(function*() {
          if (event.data._tag !== "OrderProcessingRequested") return
          yield* Deferred.succeed(delivery, { span: yield* Effect.currentSpan, event })
          const { events } = yield* commands.handleCausedBy(CompleteProcessing.make({ orderId }), event)
          yield* Deferred.succeed(outcome, events[0])
        }))
      yield* commands.handle(CreateOrder.make({ orderId, name: "book" }), metadata)
      const { events: [request] } = yield* commands.handle(RequestProcessing.make({ orderId }), metadata).pipe(
        Effect.withSpan("request")
      )

      const { event, span } = yield* Deferred.await(delivery)
      const commandSpan = Option.getOrThrow(EventBus.parseTraceparent(request.metadata.traceparent))
      expect(event.metadata.traceparent).toBe(request.metadata.traceparent)
      expect(span).toMatchObject({ name: "EventBusMemory.handle", kind: "consumer", traceId: commandSpan.traceId })
      expect(span.attributes.get("group")).toBe("reactor")
      expect(Option.map(span.parent, (parent) => parent.spanId)).toEqual(Option.some(commandSpan.spanId))
      const reaction = yield* Deferred.await(outcome)
      expect(traceOf(reaction.metadata.traceparent)).toBe(commandSpan.traceId)
    }).pipe(
      Effect.provide(commandHandlerInMemory(EventBus.layerMemoryWith(fastDeliveryPolicy))),
      Effect.provide(propagating)
    ))
})
