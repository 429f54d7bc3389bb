import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Either, FastCheck as fc, Schema } from "effect"
import { fold, fromOrder, initialState, OrderName, toOrder } from "../src/Order.js"
import { OrderEvent } from "../src/OrderEvent.js"
import { validHistoryArbitrary } from "./generators.js"

describe("OrderName", () => {
  const accepts = (name: string) => Either.isRight(Schema.decodeUnknownEither(OrderName)(name))
  it("counts characters, not UTF-16 units: 200 emoji are a name, 201 are not", () => {
    expect(accepts("🍕".repeat(200))).toBe(true)
    expect(accepts("🍕".repeat(201))).toBe(false)
    expect(accepts("a".repeat(201))).toBe(false)
  })
  it("refuses control characters and unpaired surrogates, trims, and refuses a blank name", () => {
    expect(accepts("a\u0000b")).toBe(false)
    expect(accepts("a\ud800")).toBe(false)
    expect(accepts("   ")).toBe(false)
    expect(Schema.decodeUnknownSync(OrderName)("  book  ")).toBe("book")
  })
})

describe("Order", () => {
  it("starts absent", () => expect(initialState).toEqual({ status: "absent" }))

  it.prop(
    "an event that does not fit the state changes nothing: before creation, or a second creation",
    [validHistoryArbitrary, fc.array(Arbitrary.make(OrderEvent), { maxLength: 5 })],
    ([history, events]) => {
      const state = fold(history)
      const misfits = state.status === "absent"
        ? events.filter((event) => event._tag !== "OrderCreated")
        : events.filter((event) => event._tag === "OrderCreated")
      expect(fold(misfits, state)).toEqual(state)
    }
  )

  it.prop(
    "every valid history starts with creation and ends in a known status",
    [validHistoryArbitrary],
    ([events]) => {
      const state = fold(events)
      if (events.length === 0) {
        expect(state.status).toBe("absent")
        return
      }
      expect(events[0]!._tag).toBe("OrderCreated")
      expect(events.slice(1).some((event) => event._tag === "OrderCreated")).toBe(false)
      expect(state.status).not.toBe("absent")
    }
  )

  it.prop("an order's row and its state convert into each other without loss", [validHistoryArbitrary], ([events]) => {
    const state = fold(events)
    expect(fromOrder(toOrder(state, Math.max(events.length, 1)))).toEqual(state)
  })
})
