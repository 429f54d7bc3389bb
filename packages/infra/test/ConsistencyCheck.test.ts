import { describe, expect, it } from "@effect/vitest"
import { OrderId } from "@orders/domain/Order"
import { OrderCreated, OrderProcessingFailed, OrderProcessingRequested } from "@orders/domain/OrderEvent"
import { envelope } from "@orders/domain/testing/fixtures"
import { compareOrder } from "../src/ConsistencyCheck.js"

const orderId = OrderId.make("c-1")
const events = [
  envelope(1, OrderCreated.make({ orderId, name: "a bike" })),
  envelope(2, OrderProcessingRequested.make({ orderId })),
  envelope(3, OrderProcessingFailed.make({ orderId, reason: { code: "payment_declined", message: "declined" } }))
]
const failedRow = { id: orderId, name: "a bike", status: "failed", version: 3 }

describe("compareOrder", () => {
  it("finds a failed order's row equal to its stream when both its failure's code and message match", () => {
    expect(
      compareOrder(orderId, events, { ...failedRow, failure_reason: "declined", failure_code: "payment_declined" })
    )
      .toBeUndefined()
  })

  it("finds a row that differs only in the failure's code, or only in its message", () => {
    for (
      const row of [
        { ...failedRow, failure_reason: "declined", failure_code: "unspecified" },
        { ...failedRow, failure_reason: "timed out", failure_code: "payment_declined" }
      ]
    ) {
      expect(compareOrder(orderId, events, row)).toMatchObject({ kind: "differs" })
    }
  })
})
