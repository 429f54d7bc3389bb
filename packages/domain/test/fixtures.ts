import { Array as Arr, Cause, DateTime, Duration, Effect, Exit, Layer, Schedule } from "effect"
import { CommandHandler } from "../src/CommandHandler.js"
import * as EventBus from "../src/EventBus.js"
import * as EventStore from "../src/EventStore.js"
import { OrderId } from "../src/Order.js"
import type { OrderEvent as Event } from "../src/OrderEvent.js"
import { EventMetadata, OrderEventEnvelope } from "../src/OrderEvent.js"
import * as OrderEvent from "../src/OrderEvent.js"

/** A fresh order id, so that tests sharing one real store never see each other's streams. */
export const uniqueOrderId = (prefix = "t"): OrderId => OrderId.make(`${prefix}-${crypto.randomUUID()}`)

export const metadata = EventMetadata.make({ correlationId: "test-correlation", causationId: "test-causation" })

export const envelope = (version: number, data: Event): OrderEventEnvelope =>
  OrderEventEnvelope.make({
    eventId: crypto.randomUUID(),
    streamId: data.orderId,
    version,
    type: data._tag,
    occurredAt: DateTime.unsafeMake("2026-01-01T00:00:00.000Z"),
    metadata,
    data
  })

/** The life of an order as envelopes, versions 1..n: created, then processing requested, then processed. */
export const lifecycle = (orderId: OrderId, length: 1 | 2 | 3 = 3): Array<OrderEventEnvelope> =>
  [
    OrderEvent.OrderCreated.make({ orderId, name: "book" }),
    OrderEvent.OrderProcessingRequested.make({ orderId }),
    OrderEvent.OrderProcessed.make({ orderId })
  ].slice(0, length).map((data, i) => envelope(i + 1, data))

/** `events` as one append writes them: each names the append's first and last versions, as the command handler's do. */
export const appended = (
  events: Arr.NonEmptyReadonlyArray<OrderEventEnvelope>
): Arr.NonEmptyArray<OrderEventEnvelope> => {
  const append = { first: events[0].version, last: Arr.lastNonEmpty(events).version }
  return Arr.map(
    events,
    (event) => OrderEventEnvelope.make({ ...event, metadata: EventMetadata.make({ ...event.metadata, append }) })
  )
}

/**
 * Polls `get` until `done` holds, for at most `timeout` (30 s), then returns
 * the last value: a lost message fails the test's assertion instead of hanging it.
 */
export const waitFor = <A, E, R>(
  get: Effect.Effect<A, E, R>,
  done: (value: A) => boolean,
  timeout: Duration.DurationInput = Duration.seconds(30)
) =>
  get.pipe(
    Effect.filterOrFail(done, () => "not yet" as const),
    Effect.retry({
      while: (error) => error === "not yet",
      schedule: Schedule.spaced(Duration.millis(50)).pipe(Schedule.upTo(timeout))
    }),
    Effect.catchIf((error) => error === "not yet", () => get)
  )

/**
 * The command handler on in-memory adapters, which it also provides. The store
 * has no grace: its outbox shows at once what a relay would see later.
 */
export const commandHandlerInMemory = (bus: Layer.Layer<EventBus.EventBus> = EventBus.layerMemory) =>
  CommandHandler.Default.pipe(
    Layer.provideMerge(
      Layer.merge(Layer.effect(EventStore.EventStore, EventStore.makeMemory({ grace: Duration.zero })), bus)
    )
  )

/**
 * How a contract property fared: "holds", "fails an assertion", or the cause
 * of any other failure (a property that crashes proves nothing about the flaw).
 */
export const propertyVerdict = (exit: Exit.Exit<void, unknown>) =>
  Exit.match(exit, {
    onSuccess: () => "holds",
    onFailure: (cause) => {
      const error = Cause.squash(cause)
      return error instanceof Error && error.name === "AssertionError" ? "fails an assertion" : Cause.pretty(cause)
    }
  })

/**
 * The command handler on an in-memory store whose every read yields before it
 * returns: concurrent commands all read before any of them appends, and race.
 */
export const racingCommandHandler = CommandHandler.Default.pipe(
  Layer.provideMerge(Layer.merge(
    Layer.effect(
      EventStore.EventStore,
      Effect.map(EventStore.makeMemory(), (store) => ({
        ...store,
        read: (streamId) => Effect.zipLeft(store.read(streamId), Effect.yieldNow()),
        readKnown: (streamId, through) => Effect.zipLeft(store.readKnown(streamId, through), Effect.yieldNow())
      }))
    ),
    EventBus.layerMemory
  ))
)
