/**
 * The decider: given a command and the current state, the events to record or
 * the reason to refuse. Pure: no I/O, no clock.
 *
 * @since 0.1.0
 */
import type { Array } from "effect"
import { Either } from "effect"
import type { OrderState } from "./Order.js"
import type { CreateOrder, OrderCommand } from "./OrderCommand.js"
import { InvalidOrderTransition, OrderAlreadyExists, OrderNotFound } from "./OrderError.js"
import type { OrderEvent } from "./OrderEvent.js"
import { OrderCreated, OrderProcessed, OrderProcessingFailed, OrderProcessingRequested } from "./OrderEvent.js"
import { trusted } from "./Trusted.js"

/**
 * Why the decider may refuse a command, per command: a creation only because
 * the order exists; any other command because it does not, or because its
 * status does not allow it.
 */
export type Refusal<C extends OrderCommand> = C extends CreateOrder ? OrderAlreadyExists
  : OrderNotFound | InvalidOrderTransition

export type Decision<C extends OrderCommand> = Either.Either<Array.NonEmptyReadonlyArray<OrderEvent>, Refusal<C>>

export const decide = <C extends OrderCommand>(command: C, state: OrderState): Decision<C> =>
  // The switch below narrows `command` but not `C`; `Refusal` states what each branch returns.
  decideAny(command, state) as Decision<C>

const decideAny = (
  command: OrderCommand,
  state: OrderState
): Either.Either<Array.NonEmptyReadonlyArray<OrderEvent>, Refusal<OrderCommand>> => {
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
