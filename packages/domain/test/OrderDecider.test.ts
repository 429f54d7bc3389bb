import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { fold } from "../src/Order.js"
import { OrderId } from "../src/Order.js"
import type { OrderCommand } from "../src/OrderCommand.js"
import { CompleteProcessing, CreateOrder, FailProcessing, RequestProcessing } from "../src/OrderCommand.js"
import { decide } from "../src/OrderDecider.js"
import type { OrderEvent } from "../src/OrderEvent.js"
import { OrderCreated, OrderProcessed, OrderProcessingFailed, OrderProcessingRequested } from "../src/OrderEvent.js"

const orderId = OrderId.make("order-1")
const created = OrderCreated.make({ orderId, name: "book" })
const requested = OrderProcessingRequested.make({ orderId })
const processed = OrderProcessed.make({ orderId })
const declined = { code: "payment_declined", message: "payment declined" }
const failed = OrderProcessingFailed.make({ orderId, reason: declined })

/** given events, when a command: then the new events, or the error. */
const given = (events: ReadonlyArray<OrderEvent>) => ({
  when: (command: OrderCommand) => {
    const decision = decide(command, fold(events))
    return {
      then: (expected: ReadonlyArray<OrderEvent>) => expect(decision).toEqual(Either.right(expected)),
      thenFails: (tag: string, message: string) => {
        expect(Either.isLeft(decision)).toBe(true)
        const error = Either.isLeft(decision) ? decision.left : undefined
        expect(error?._tag).toBe(tag)
        expect(error?.message).toBe(message)
      }
    }
  }
})

describe("OrderDecider", () => {
  describe("CreateOrder", () => {
    it("creates an order that does not exist", () =>
      given([]).when(CreateOrder.make({ orderId, name: "book" })).then([created]))

    it("refuses an id that exists, whatever its status", () => {
      for (const history of [[created], [created, requested], [created, requested, processed]]) {
        given(history).when(CreateOrder.make({ orderId, name: "other" })).thenFails(
          "OrderAlreadyExists",
          "order 'order-1' already exists"
        )
      }
    })
  })

  describe("RequestProcessing", () => {
    it("starts processing a new order", () =>
      given([created]).when(RequestProcessing.make({ orderId })).then([requested]))

    it("retries a failed order", () =>
      given([created, requested, failed]).when(RequestProcessing.make({ orderId })).then([requested]))

    it("refuses an order that does not exist", () =>
      given([]).when(RequestProcessing.make({ orderId })).thenFails("OrderNotFound", "order 'order-1' does not exist"))

    it("refuses an order already processing", () =>
      given([created, requested]).when(RequestProcessing.make({ orderId })).thenFails(
        "InvalidOrderTransition",
        "cannot process order 'order-1': it is processing"
      ))

    it("refuses an order already processed", () =>
      given([created, requested, processed]).when(RequestProcessing.make({ orderId })).thenFails(
        "InvalidOrderTransition",
        "cannot process order 'order-1': it is processed"
      ))
  })

  describe("CompleteProcessing", () => {
    it("completes an order being processed", () =>
      given([created, requested]).when(CompleteProcessing.make({ orderId })).then([processed]))

    it("refuses an order that does not exist", () =>
      given([]).when(CompleteProcessing.make({ orderId })).thenFails("OrderNotFound", "order 'order-1' does not exist"))

    it("refuses an order not being processed (e.g. a redelivered request)", () => {
      given([created]).when(CompleteProcessing.make({ orderId })).thenFails(
        "InvalidOrderTransition",
        "cannot complete processing of order 'order-1': it is new"
      )
      given([created, requested, processed]).when(CompleteProcessing.make({ orderId })).thenFails(
        "InvalidOrderTransition",
        "cannot complete processing of order 'order-1': it is processed"
      )
    })
  })

  describe("FailProcessing", () => {
    it("fails an order being processed, with its reason", () =>
      given([created, requested]).when(FailProcessing.make({ orderId, reason: declined })).then([failed]))

    it("refuses an order that does not exist", () =>
      given([]).when(FailProcessing.make({ orderId, reason: declined })).thenFails(
        "OrderNotFound",
        "order 'order-1' does not exist"
      ))

    it("refuses an order not being processed", () =>
      given([created, requested, failed]).when(FailProcessing.make({ orderId, reason: declined })).thenFails(
        "InvalidOrderTransition",
        "cannot fail processing of order 'order-1': it is failed"
      ))
  })
})
