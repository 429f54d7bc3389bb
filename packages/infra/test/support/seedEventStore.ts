/**
 * Fills an event store database directly, as many appends would have left it:
 * one commit per event, inserted in batches with `insertMany`, no outbox
 * markers (everything published). For the tests and the benchmark of the
 * operator commands, which need large stores fast.
 */
import type { Order } from "@orders/domain/Order"
import { OrderId } from "@orders/domain/Order"
import type { OrderEvent } from "@orders/domain/OrderEvent"
import * as OrderEvents from "@orders/domain/OrderEvent"
import { EventMetadata, OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { projectAll } from "@orders/domain/Projection"
import { DateTime, Effect } from "effect"
import type { Db } from "mongodb"
import type { CommitDocument } from "../../src/EventStoreMongo.js"
import { COMMITS } from "../../src/EventStoreMongo.js"

/** The lives an order may have had, taken in turn: 1, 2, 3 and 3 events (2.25 on average). */
const lives: ReadonlyArray<(orderId: OrderId) => ReadonlyArray<OrderEvent>> = [
  (orderId) => [OrderEvents.OrderCreated.make({ orderId, name: `order ${orderId}` })],
  (orderId) => [
    OrderEvents.OrderCreated.make({ orderId, name: `order ${orderId}` }),
    OrderEvents.OrderProcessingRequested.make({ orderId })
  ],
  (orderId) => [
    OrderEvents.OrderCreated.make({ orderId, name: `order ${orderId}` }),
    OrderEvents.OrderProcessingRequested.make({ orderId }),
    OrderEvents.OrderProcessed.make({ orderId })
  ],
  (orderId) => [
    OrderEvents.OrderCreated.make({ orderId, name: `order ${orderId}` }),
    OrderEvents.OrderProcessingRequested.make({ orderId }),
    OrderEvents.OrderProcessingFailed.make({
      orderId,
      reason: { code: "simulated_failure", message: "mock processing failed" }
    })
  ]
]

/** The average number of events of a seeded order. */
export const eventsPerOrder = lives.reduce((sum, life) => sum + life(OrderId.make("x")).length, 0) / lives.length

const metadata = EventMetadata.make({ correlationId: "seed", causationId: "seed" })

/** The events of the `index`th seeded order, as the command handler would have made them. */
export const seededEvents = (
  prefix: string,
  index: number,
  occurredAt: DateTime.Utc
): ReadonlyArray<OrderEventEnvelope> => {
  const orderId = OrderId.make(`${prefix}-${index}`)
  return lives[index % lives.length]!(orderId).map((data, i) =>
    OrderEventEnvelope.make({
      eventId: crypto.randomUUID(),
      streamId: orderId,
      version: i + 1,
      type: data._tag,
      occurredAt,
      metadata,
      data
    })
  )
}

/** The commit that appends `events` (contiguous, of one stream), as the event store writes it. */
export const commitOf = (events: ReadonlyArray<OrderEventEnvelope>): CommitDocument => {
  const first = events[0]!
  return {
    _id: `${first.streamId}:${first.version - 1}`,
    streamId: first.streamId,
    previous: first.version - 1,
    version: first.version - 1 + events.length,
    events: events.map(OrderEvents.encodeEvent)
  }
}

export interface SeedOptions {
  /** How many orders; their ids are `<prefix>-0` .. `<prefix>-<orders - 1>`. */
  readonly orders: number
  readonly prefix: string
  /** Commits per `insertMany`. Default 1,000. */
  readonly batch?: number
  /** When the events happened. Default now. */
  readonly occurredAt?: DateTime.Utc
}

/** Inserts the commits of `orders` orders into `db`; returns how many events, and the orders the store now implies. */
export const seedEventStore = (db: Db, options: SeedOptions) =>
  Effect.gen(function*() {
    const occurredAt = options.occurredAt ?? (yield* DateTime.now)
    const batch = options.batch ?? 1_000
    const commits = db.collection<CommitDocument>(COMMITS)
    const orders: Array<Order> = []
    let pending: Array<CommitDocument> = []
    let events = 0
    const flush = Effect.promise(() => commits.insertMany(pending, { ordered: false })).pipe(
      Effect.tap(() => Effect.sync(() => (pending = [])))
    )
    for (let index = 0; index < options.orders; index++) {
      const stream = seededEvents(options.prefix, index, occurredAt)
      for (const event of stream) pending.push(commitOf([event]))
      events += stream.length
      orders.push(projectAll(undefined, stream)!)
      if (pending.length >= batch) yield* flush
    }
    if (pending.length > 0) yield* flush
    return { events, orders }
  })
