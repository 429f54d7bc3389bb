/**
 * The decider: given a command and the current state, the events to record or
 * the reason to refuse. Pure: no I/O, no clock.
 *
 * @since 0.1.0
 */
import type { Array } from "effect"
import { Either } from "effect"
import type { OrderState } from "./Order.js"
import type { OrderCommand } from "./OrderCommand.js"
import type { DecisionError } from "./OrderError.js"
import { InvalidOrderTransition, OrderAlreadyExists, OrderNotFound } from "./OrderError.js"
import type { OrderEvent } from "./OrderEvent.js"
import { OrderCreated, OrderProcessed, OrderProcessingFailed, OrderProcessingRequested } from "./OrderEvent.js"

/** Event fields come from the command, already decoded: validating them again would only cost. */
const trusted = { disableValidation: true }

export type Decision = Either.Either<Array.NonEmptyReadonlyArray<OrderEvent>, DecisionError>

export const decide = (command: OrderCommand, state: OrderState): Decision => {
  switch (command._tag) {
    case "CreateOrder":
      return state.status === "absent"
        ? Either.right([OrderCreated.make({ orderId: command.orderId, name: command.name }, trusted)])
        : Either.left(OrderAlreadyExists.of(command.orderId))
    case "RequestProcessing":
      switch (state.status) {
        case "absent":
          return Either.left(OrderNotFound.of(command.orderId))
        // A failed order may be retried.
        case "new":
        case "failed":
          return Either.right([OrderProcessingRequested.make({ orderId: command.orderId }, trusted)])
        default:
          return Either.left(InvalidOrderTransition.of(command.orderId, state.status, "process"))
      }
    case "CompleteProcessing":
      switch (state.status) {
        case "absent":
          return Either.left(OrderNotFound.of(command.orderId))
        case "processing":
          return Either.right([OrderProcessed.make({ orderId: command.orderId }, trusted)])
        default:
          return Either.left(InvalidOrderTransition.of(command.orderId, state.status, "complete processing of"))
      }
    case "FailProcessing":
      switch (state.status) {
        case "absent":
          return Either.left(OrderNotFound.of(command.orderId))
        case "processing":
          return Either.right([
            OrderProcessingFailed.make({ orderId: command.orderId, reason: command.reason }, trusted)
          ])
        default:
          return Either.left(InvalidOrderTransition.of(command.orderId, state.status, "fail processing of"))
      }
    default: {
      const unhandled: never = command
      return unhandled
    }
  }
}
