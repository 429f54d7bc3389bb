import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { OrderId } from "../src/Order.js"
import { decodeEvent, decodeEventJson, encodeEvent, OrderProcessingFailed, schemaVersions } from "../src/OrderEvent.js"
import { envelope, lifecycle } from "./fixtures.js"

const [created] = lifecycle(OrderId.make("e-1"), 1)
const declined = { code: "payment_declined", message: "card declined" }
const failed = envelope(3, OrderProcessingFailed.make({ orderId: OrderId.make("e-1"), reason: declined }))
/** The failure as version 1 stored it: no `schemaVersion`, the reason a string. */
const { schemaVersion: _, ...failedV1 } = {
  ...encodeEvent(failed),
  data: { _tag: "OrderProcessingFailed", orderId: "e-1", reason: "card declined" }
}

describe("OrderEvent", () => {
  it.effect("round-trips an envelope through its JSON form", () =>
    Effect.gen(function*() {
      const json = JSON.stringify(encodeEvent(created!))
      expect(JSON.parse(json)).toMatchObject({ type: "OrderCreated", occurredAt: "2026-01-01T00:00:00.000Z" })
      expect(yield* decodeEventJson(json)).toEqual(created)
      expect(yield* decodeEvent(JSON.parse(json))).toEqual(created)
    }))

  it("writes each event at its type's current schema version", () => {
    for (const event of [...lifecycle(OrderId.make("e-1")), failed]) {
      expect(encodeEvent(event).schemaVersion).toBe(schemaVersions[event.type])
    }
    expect(encodeEvent(failed)).toMatchObject({ schemaVersion: 2, data: { reason: declined } })
  })

  it.effect("reads an event stored without a schema version as version 1, and upcasts a v1 failure", () =>
    Effect.gen(function*() {
      const { schemaVersion: _, ...createdV1 } = encodeEvent(created!)
      expect(yield* decodeEvent(createdV1)).toEqual(created)
      const upcast = {
        ...failed,
        data: OrderProcessingFailed.make({ ...failed.data, reason: { code: "unspecified", message: "card declined" } })
      }
      expect(yield* decodeEvent(failedV1)).toEqual(upcast)
      expect(yield* decodeEventJson(JSON.stringify({ ...failedV1, schemaVersion: 1 }))).toEqual(upcast)
    }))

  const unreadable: ReadonlyArray<readonly [string, unknown, string]> = [
    [
      "a schema version this code does not know (a newer writer's)",
      { ...encodeEvent(failed), schemaVersion: 3 },
      "Expected 2, actual 3"
    ],
    ["a v1 failure with a structured reason", { ...encodeEvent(failed), schemaVersion: 1 }, "Expected string"],
    ["a v2 failure with a string reason", { ...failedV1, schemaVersion: 2 }, "actual \"card declined\""],
    ["a malformed failure code", {
      ...encodeEvent(failed),
      data: { ...failedV1.data, reason: { code: "Declined!", message: "" } }
    }, "must be 1-64 of a-z 0-9 _"]
  ]
  for (const [what, stored, because] of unreadable) {
    it.effect(`refuses ${what}, saying why`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(decodeEvent(stored))
        expect(error.message).toContain(because)
      }))
  }

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
