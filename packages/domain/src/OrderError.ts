/**
 * Errors a caller can act on. They cross the API, so they are Schemas; their
 * HTTP status is given where the endpoints are declared.
 *
 * @since 0.1.0
 */
import { Data, Schema } from "effect"
import { OrderStatus } from "./Order.js"
import { trusted } from "./Trusted.js"

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
/**
 * A consumer read the event store and did not find an event it was delivered:
 * the read is stale. Not handled yet; delivered again.
 */
export class StaleRead extends Data.TaggedError("StaleRead")<{
  readonly streamId: string
  readonly version: number
  readonly found: number
}> {
  override get message() {
    return `the event store shows order '${this.streamId}' at version ${this.found}, not yet at ${this.version}`
  }
}

export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()("ServiceUnavailable", {
  service: Schema.String,
  message: Schema.String
}) {}

/**
 * The store did not confirm whether the command's events were written (the
 * connection was lost mid-write). If they were, they are published like any
 * others; read the order to see which it was.
 */
export class AppendOutcomeUnknown extends Schema.TaggedError<AppendOutcomeUnknown>()("AppendOutcomeUnknown", {
  streamId: Schema.String,
  message: Schema.String
}) {
  static of(streamId: string, reason: string) {
    return new AppendOutcomeUnknown({
      streamId,
      message:
        `the outcome of the command on order '${streamId}' is unknown (${reason}); read the order to see whether it was applied`
    }, trusted)
  }
}
