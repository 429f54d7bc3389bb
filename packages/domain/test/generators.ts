import { Arbitrary, Either, FastCheck as fc } from "effect"
import { FailureReason, fold, initialState } from "../src/Order.js"
import { OrderId } from "../src/Order.js"
import type { OrderCommand } from "../src/OrderCommand.js"
import { CompleteProcessing, CreateOrder, FailProcessing, RequestProcessing } from "../src/OrderCommand.js"
import { decide } from "../src/OrderDecider.js"
import type { OrderEvent } from "../src/OrderEvent.js"

const orderId = OrderId.make("order-1")

/** Any command on one order, valid or not in the state it will meet. */
export const commandArbitrary: fc.Arbitrary<OrderCommand> = fc.oneof(
  fc.string({ minLength: 1, maxLength: 20 }).filter((name) => name.trim().length > 0).map((name) =>
    CreateOrder.make({ orderId, name: name.trim() })
  ),
  fc.constant(RequestProcessing.make({ orderId })),
  fc.constant(CompleteProcessing.make({ orderId })),
  Arbitrary.make(FailureReason).map((reason) => FailProcessing.make({ orderId, reason }))
)

/** The events a run of commands really produces: every valid history of an order is one of these. */
export const validHistory = (commands: ReadonlyArray<OrderCommand>): ReadonlyArray<OrderEvent> => {
  const events: Array<OrderEvent> = []
  let state = initialState
  for (const command of commands) {
    const decision = decide(command, state)
    if (Either.isRight(decision)) {
      events.push(...decision.right)
      state = fold(decision.right, state)
    }
  }
  return events
}

export const validHistoryArbitrary = fc.array(commandArbitrary, { maxLength: 30 }).map(validHistory)
