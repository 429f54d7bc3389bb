import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { fold, toOrder } from "../src/Order.js"
import { OrderId } from "../src/Order.js"
import { project, projectAll } from "../src/Projection.js"
import { envelope, lifecycle } from "./fixtures.js"
import { validHistoryArbitrary } from "./generators.js"

const orderId = OrderId.make("order-1")

describe("Projection", () => {
  it("applies the next event, skips one already applied, and reports a gap", () => {
    const [created, requested, processed] = lifecycle(orderId)
    const row = projectAll(undefined, [created!])
    expect(row).toMatchObject({ id: orderId, status: "new", version: 1 })
    expect(project(row, created!)._tag).toBe("AlreadyApplied")
    expect(project(row, processed!)).toMatchObject({ _tag: "Gap", lastVersion: 1 })
    expect(project(row, requested!)).toMatchObject({ _tag: "Applied", order: { status: "processing", version: 2 } })
  })

  it.prop(
    "replaying any prefix, any number of times, yields the fold of the stream",
    [validHistoryArbitrary.filter((events) => events.length > 0), fc.array(fc.nat(), { maxLength: 10 })],
    ([events, replays]) => {
      const stream = events.map((data, i) => envelope(i + 1, data))
      let row = projectAll(undefined, stream)
      for (const replay of replays) row = projectAll(row, stream.slice(0, replay % (stream.length + 1)))
      expect(row).toEqual(toOrder(fold(events), events.length))
    }
  )
})
