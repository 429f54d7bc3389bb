import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, FastCheck as fc } from "effect"
import { fold, fromOrder, initialState, toOrder } from "../src/Order.js"
import { OrderEvent } from "../src/OrderEvent.js"
import { validHistoryArbitrary } from "./generators.js"

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
