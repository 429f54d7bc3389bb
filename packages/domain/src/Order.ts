/**
 * An order's state as a pure fold over its events.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import type { OrderEvent } from "./OrderEvent.js"
import { OrderId, OrderName, StreamVersion } from "./OrderEvent.js"
import { trusted } from "./Trusted.js"

export const OrderStatus = Schema.Literal("new", "processing", "processed", "failed")
export type OrderStatus = typeof OrderStatus.Type

/** An order that exists, as the API shows it and the read model stores it. */
export class Order extends Schema.Class<Order>("Order")({
  id: OrderId,
  name: OrderName,
  status: OrderStatus,
  /** Version of the last event applied: lets readers and the projector detect staleness. */
  version: StreamVersion,
  failureReason: Schema.optional(Schema.String)
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
    readonly reason: string
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
        { id: state.id, name: state.name, status: state.status, version, failureReason: state.reason },
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
    ? { status: "failed", id: order.id, name: order.name, reason: order.failureReason ?? "" }
    : { status: order.status, id: order.id, name: order.name }
}
