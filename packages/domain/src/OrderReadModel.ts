/**
 * Port: the read model that queries read, kept up to date by the projector.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option } from "effect"
import type { Order } from "./Order.js"
import type { OrderId } from "./Order.js"
import type { ServiceUnavailable } from "./OrderError.js"

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

/** The read model kept in process memory, with its ids kept sorted so that a page costs its size, not the table's. */
export const makeMemory: Effect.Effect<OrderReadModelShape> = Effect.sync(() => {
  const rows = new Map<string, Order>()
  const sortedIds: Array<string> = []
  /** Index of the first id greater than `id` (binary search). */
  const indexAfter = (id: string) => {
    let low = 0
    let high = sortedIds.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (sortedIds[middle]! <= id) low = middle + 1
      else high = middle
    }
    return low
  }
  return {
    get: (id) => Effect.sync(() => Option.fromNullable(rows.get(id))),
    list: ({ after, limit }) =>
      Effect.sync(() => {
        const start = after === undefined ? 0 : indexAfter(after)
        return sortedIds.slice(start, start + limit).map((id) => rows.get(id)!)
      }),
    save: (order) =>
      Effect.sync(() => {
        const stored = rows.get(order.id)
        if (stored !== undefined && stored.version >= order.version) return
        if (stored === undefined) sortedIds.splice(indexAfter(order.id), 0, order.id)
        rows.set(order.id, order)
      })
  }
})

export const layerMemory: Layer.Layer<OrderReadModel> = Layer.effect(OrderReadModel, makeMemory)
