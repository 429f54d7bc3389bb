/**
 * Port: the read model that queries read, kept up to date by the projector.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option } from "effect"
import type { Order } from "./Order.js"
import type { ServiceUnavailable } from "./OrderError.js"
import type { OrderId } from "./OrderEvent.js"

export interface ListOptions {
  /** Only orders whose id sorts after this one (keyset pagination). */
  readonly after?: string | undefined
  readonly limit: number
}

export interface OrderReadModelShape {
  readonly get: (id: OrderId) => Effect.Effect<Option.Option<Order>, ServiceUnavailable>
  /** Orders sorted by id. */
  readonly list: (options: ListOptions) => Effect.Effect<ReadonlyArray<Order>, ServiceUnavailable>
  /**
   * Stores the order unless the stored row is already at its version or later,
   * so that replays and redeliveries change nothing.
   */
  readonly save: (order: Order) => Effect.Effect<void, ServiceUnavailable>
}

export class OrderReadModel extends Context.Tag("orders/OrderReadModel")<OrderReadModel, OrderReadModelShape>() {}

export const makeMemory: Effect.Effect<OrderReadModelShape> = Effect.sync(() => {
  const rows = new Map<string, Order>()
  return {
    get: (id) => Effect.sync(() => Option.fromNullable(rows.get(id))),
    list: ({ after, limit }) =>
      Effect.sync(() =>
        [...rows.values()]
          .filter((order) => after === undefined || order.id > after)
          .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
          .slice(0, limit)
      ),
    save: (order) =>
      Effect.sync(() => {
        const stored = rows.get(order.id)
        if (stored === undefined || stored.version < order.version) rows.set(order.id, order)
      })
  }
})

export const layerMemory: Layer.Layer<OrderReadModel> = Layer.effect(OrderReadModel, makeMemory)
