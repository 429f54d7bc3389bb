import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { OrderId } from "../src/Order.js"
import { decodeEvent, decodeEventJson, encodeEvent } from "../src/OrderEvent.js"
import { lifecycle } from "./fixtures.js"

const [created] = lifecycle(OrderId.make("e-1"), 1)

describe("OrderEvent", () => {
  it.effect("round-trips an envelope through its JSON form", () =>
    Effect.gen(function*() {
      const json = JSON.stringify(encodeEvent(created!))
      expect(JSON.parse(json)).toMatchObject({ type: "OrderCreated", occurredAt: "2026-01-01T00:00:00.000Z" })
      expect(yield* decodeEventJson(json)).toEqual(created)
      expect(yield* decodeEvent(JSON.parse(json))).toEqual(created)
    }))

  const malformed: ReadonlyArray<readonly [string, string]> = [
    ["text that is not JSON", "not json"],
    [
      "an unknown event type",
      JSON.stringify({ ...encodeEvent(created!), type: "OrderShipped", data: { _tag: "OrderShipped", orderId: "e-1" } })
    ],
    ["a type that disagrees with the data", JSON.stringify({ ...encodeEvent(created!), type: "OrderProcessed" })],
    ["a stream id that disagrees with the data", JSON.stringify({ ...encodeEvent(created!), streamId: "other" })],
    ["a version below 1", JSON.stringify({ ...encodeEvent(created!), version: 0 })],
    ["a missing event id", JSON.stringify({ ...encodeEvent(created!), eventId: undefined })]
  ]
  for (const [what, json] of malformed) {
    it.effect(`fails with a typed error, never a throw, on ${what}`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(decodeEventJson(json))
        expect(error._tag).toBe("EventDecodeError")
        expect(error.message.length).toBeGreaterThan(0)
      }))
  }
})
