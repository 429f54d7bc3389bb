/**
 * An order's state as a pure fold over its events.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import type { OrderEvent } from "./OrderEvent.js"
import { trusted } from "./Trusted.js"

/**
 * An order's id: it is also the stream id and a URL path segment, so it is kept
 * to URL-safe characters.
 */
export const OrderId = Schema.String.pipe(
  Schema.minLength(1, { message: () => "must not be empty" }),
  Schema.maxLength(128, { message: () => "must be at most 128 characters" }),
  Schema.pattern(/^[A-Za-z0-9._~-]+$/, {
    message: () => "must contain only letters, digits and . _ ~ -"
  }),
  Schema.brand("OrderId")
).annotations({ identifier: "OrderId", description: "URL-safe id of an order (1-128 of A-Z a-z 0-9 . _ ~ -)" })
export type OrderId = typeof OrderId.Type

const controlCharacter = /\p{Cc}/u
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * The human name of an order: trimmed, 1-200 characters, printable text.
 * Control characters and lone surrogates are refused at the edge: PostgreSQL
 * cannot store a NUL, and an event the read model cannot store would stall its
 * projector.
 */
export const OrderName = Schema.Trim.pipe(
  Schema.minLength(1, { message: () => "must not be empty" }),
  // Characters as people count them (code points), not UTF-16 units: an emoji is one.
  Schema.filter((name) => [...name].length <= 200, { message: () => "must be at most 200 characters" }),
  Schema.filter((name) => !controlCharacter.test(name) && !loneSurrogate.test(name), {
    message: () => "must not contain control characters or unpaired surrogates"
  })
).annotations({ identifier: "OrderName" })

/** Position of an event in its stream: the first event is version 1. */
export const StreamVersion = Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)).annotations({
  identifier: "StreamVersion"
})

/**
 * What kind of failure, for programs: snake_case (`payment_declined`). A
 * pattern rather than a closed list, so that a new kind needs no new schema
 * version: readers treat a code they do not know as a failure like any other.
 */
export const FailureCode = Schema.String.pipe(
  Schema.pattern(/^[a-z][a-z0-9_]{0,63}$/, {
    message: () => "must be 1-64 of a-z 0-9 _, starting with a letter"
  })
).annotations({
  identifier: "FailureCode",
  description: "What kind of failure, for programs (snake_case, e.g. payment_declined; unspecified when not recorded)"
})

/**
 * The code of failures recorded before failures had codes (free text only).
 * Named as protobuf names the zero value of its enums: the code was not set,
 * which says no more than it knows ("unknown" would claim a code nobody
 * recognised; "legacy" would name where it came from, not what it means).
 */
export const unspecifiedFailureCode = "unspecified"

/** Why processing failed: a code for programs, a message for people. */
export const FailureReason = Schema.Struct({
  code: FailureCode,
  message: Schema.String.annotations({ description: "What went wrong, for people" })
}).annotations({ identifier: "FailureReason", description: "Why processing failed" })
export type FailureReason = typeof FailureReason.Type

export const OrderStatus = Schema.Literal("new", "processing", "processed", "failed")
export type OrderStatus = typeof OrderStatus.Type

/** An order that exists, as the API shows it and the read model stores it. */
export class Order extends Schema.Class<Order>("Order")({
  id: OrderId,
  name: OrderName,
  status: OrderStatus,
  /** Version of the last event applied: lets readers and the projector detect staleness. */
  version: StreamVersion,
  /** Present on failed orders only. */
  failure: Schema.optional(FailureReason)
}) {}

/** The state the decider works on: no order yet, or an order in one of its statuses. */
export type OrderState =
  | { readonly status: "absent" }
  | {
    readonly status: Exclude<OrderStatus, "failed">
    readonly id: OrderId
    readonly name: string
  }
  | {
    readonly status: "failed"
    readonly id: OrderId
    readonly name: string
    readonly reason: FailureReason
  }

export const initialState: OrderState = { status: "absent" }

/**
 * Applies one event. Total: an event that does not fit the state (which the
 * decider never produces) leaves the state as it is.
 */
export const evolve = (state: OrderState, event: OrderEvent): OrderState => {
  switch (event._tag) {
    case "OrderCreated":
      return state.status === "absent" ? { status: "new", id: event.orderId, name: event.name } : state
    case "OrderProcessingRequested":
      return state.status === "absent" ? state : { status: "processing", id: state.id, name: state.name }
    case "OrderProcessed":
      return state.status === "absent" ? state : { status: "processed", id: state.id, name: state.name }
    case "OrderProcessingFailed":
      return state.status === "absent"
        ? state
        : { status: "failed", id: state.id, name: state.name, reason: event.reason }
  }
}

export const fold = (events: Iterable<OrderEvent>, from: OrderState = initialState): OrderState => {
  let state = from
  for (const event of events) state = evolve(state, event)
  return state
}

/** The order a state describes at a given stream version, if it exists. */
export const toOrder = (state: OrderState, version: number): Order | undefined => {
  switch (state.status) {
    case "absent":
      return undefined
    case "failed":
      return Order.make(
        { id: state.id, name: state.name, status: state.status, version, failure: state.reason },
        trusted
      )
    default:
      return Order.make({ id: state.id, name: state.name, status: state.status, version }, trusted)
  }
}

/** The state an order stands for: lets a projection continue folding from a stored row. */
export const fromOrder = (order: Order | undefined): OrderState => {
  if (order === undefined) return initialState
  return order.status === "failed"
    ? {
      status: "failed",
      id: order.id,
      name: order.name,
      // Never missing on a row the projector wrote; the domain type alone cannot rule it out.
      reason: order.failure ?? { code: unspecifiedFailureCode, message: "" }
    }
    : { status: order.status, id: order.id, name: order.name }
}
