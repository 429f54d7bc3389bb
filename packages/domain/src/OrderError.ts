/**
 * Errors a caller can act on. They cross the API, so they are Schemas; their
 * HTTP status is given where the endpoints are declared.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { OrderStatus } from "./Order.js"

/** The fields of these errors come from decoded values: validating them again would only cost. */
const trusted = { disableValidation: true }

export class OrderNotFound extends Schema.TaggedError<OrderNotFound>()("OrderNotFound", {
  orderId: Schema.String,
  message: Schema.String
}) {
  static of(orderId: string) {
    return new OrderNotFound({ orderId, message: `order '${orderId}' does not exist` }, trusted)
  }
}

export class OrderAlreadyExists extends Schema.TaggedError<OrderAlreadyExists>()("OrderAlreadyExists", {
  orderId: Schema.String,
  message: Schema.String
}) {
  static of(orderId: string) {
    return new OrderAlreadyExists({ orderId, message: `order '${orderId}' already exists` }, trusted)
  }
}

/** The command is not allowed in the order's current status. */
export class InvalidOrderTransition extends Schema.TaggedError<InvalidOrderTransition>()("InvalidOrderTransition", {
  orderId: Schema.String,
  status: OrderStatus,
  command: Schema.String,
  message: Schema.String
}) {
  static of(orderId: string, status: OrderStatus, command: string) {
    return new InvalidOrderTransition({
      orderId,
      status,
      command,
      message: `cannot ${command} order '${orderId}': it is ${status}`
    }, trusted)
  }
}

/** Another writer appended to the stream since it was read: reload and decide again. */
export class ConcurrencyConflict extends Schema.TaggedError<ConcurrencyConflict>()("ConcurrencyConflict", {
  streamId: Schema.String,
  expectedVersion: Schema.Int,
  message: Schema.String
}) {
  static of(streamId: string, expectedVersion: number) {
    return new ConcurrencyConflict({
      streamId,
      expectedVersion,
      message: `order '${streamId}' changed concurrently (expected version ${expectedVersion}); retry`
    }, trusted)
  }
}

/** A backing server (database, broker) cannot be reached; the request changed nothing and may be retried. */
export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()("ServiceUnavailable", {
  service: Schema.String,
  message: Schema.String
}) {}

export type DecisionError = OrderNotFound | OrderAlreadyExists | InvalidOrderTransition
