/**
 * The one way orders change: load the stream, fold it, decide, append with
 * optimistic concurrency, publish. Shared by the API and the processor.
 *
 * @since 0.1.0
 */
import { Array, DateTime, Duration, Effect } from "effect"
import { EventBus } from "./EventBus.js"
import { EventStore } from "./EventStore.js"
import type { Order } from "./Order.js"
import { fold, toOrder } from "./Order.js"
import type { OrderCommand } from "./OrderCommand.js"
import { decide } from "./OrderDecider.js"
import type { EventMetadata } from "./OrderEvent.js"
import { OrderEventEnvelope } from "./OrderEvent.js"

export interface CommandResult {
  /** The order after the command. */
  readonly order: Order
  readonly events: Array.NonEmptyReadonlyArray<OrderEventEnvelope>
}

/** How long a command waits for the bus before leaving its events to the outbox relay. */
export const publishTimeout = Duration.seconds(2)

export class CommandHandler extends Effect.Service<CommandHandler>()("orders/CommandHandler", {
  effect: Effect.gen(function*() {
    const store = yield* EventStore
    const bus = yield* EventBus

    /**
     * Publishing is best effort here: the events are already durable, and the
     * outbox relay republishes whatever is left unmarked. So a command waits
     * for the bus only briefly: a broker that hangs must not hang the API.
     */
    const publish = (events: Array.NonEmptyReadonlyArray<OrderEventEnvelope>) =>
      bus.publish(events).pipe(
        Effect.timeoutFail({
          duration: publishTimeout,
          onTimeout: () => `no answer from the bus within ${Duration.format(publishTimeout)}`
        }),
        Effect.zipRight(store.markPublished(Array.lastNonEmpty(events).streamId, Array.lastNonEmpty(events).version)),
        Effect.catchAll((error) => Effect.logWarning("publish failed; the outbox relay will retry", error))
      )

    const handle = Effect.fn("CommandHandler.handle")(function*(command: OrderCommand, metadata: EventMetadata) {
      yield* Effect.annotateCurrentSpan({ orderId: command.orderId, command: command._tag })
      const history = yield* store.read(command.orderId)
      const version = history.length
      const state = fold(history.map((event) => event.data))
      const decided = yield* decide(command, state)
      const occurredAt = yield* DateTime.now
      // Built from decoded values and a fresh UUID: validating again would only cost.
      const events = Array.map(decided, (data, i) =>
        OrderEventEnvelope.make({
          eventId: crypto.randomUUID(),
          streamId: command.orderId,
          version: version + i + 1,
          type: data._tag,
          occurredAt,
          metadata,
          data
        }, { disableValidation: true }))
      yield* store.append(command.orderId, version, events)
      yield* publish(events)
      const order = toOrder(fold(decided, state), version + events.length)
      if (order === undefined) return yield* Effect.dieMessage("an accepted command left no order")
      return { order, events } satisfies CommandResult
    })

    return { handle } as const
  })
}) {}
