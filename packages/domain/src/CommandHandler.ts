/**
 * The one way orders change: load the stream, fold it, decide, append with
 * optimistic concurrency, publish. Shared by the API and the processor.
 *
 * @since 0.1.0
 */
import { Array, DateTime, Duration, Effect, Schedule } from "effect"
import { EventBus } from "./EventBus.js"
import { EventStore } from "./EventStore.js"
import type { Order } from "./Order.js"
import { fold, toOrder } from "./Order.js"
import type { OrderCommand } from "./OrderCommand.js"
import type { Refusal } from "./OrderDecider.js"
import { decide } from "./OrderDecider.js"
import type { AppendOutcomeUnknown, ConcurrencyConflict, ServiceUnavailable } from "./OrderError.js"
import { StaleRead } from "./OrderError.js"
import { EventMetadata, OrderEventEnvelope } from "./OrderEvent.js"
import { trusted } from "./Trusted.js"

export interface CommandResult {
  /** The order after the command. */
  readonly order: Order
  readonly events: Array.NonEmptyReadonlyArray<OrderEventEnvelope>
}

export type CommandError<C extends OrderCommand> =
  | Refusal<C>
  | ConcurrencyConflict
  | ServiceUnavailable
  | AppendOutcomeUnknown

/** How long a command waits for the bus before leaving its events to the outbox relay. */
export const publishTimeout = Duration.seconds(2)

/**
 * A writer that lost a race decides again on the fresh state: a second
 * creation then answers "already exists", a second processing request
 * "already processing". Bounded, jittered: a hot order still answers 409.
 */
export const conflictRetry = Schedule.exponential(Duration.millis(5)).pipe(
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(4))
)

export class CommandHandler extends Effect.Service<CommandHandler>()("orders/CommandHandler", {
  effect: Effect.gen(function*() {
    const store = yield* EventStore
    const bus = yield* EventBus

    /**
     * Publishing is best effort here: the events are already durable in the
     * outbox, and the relay republishes whatever is not marked. So a command
     * waits for the bus only briefly: a broker that hangs must not hang the API.
     * Only what the bus acknowledged is marked.
     */
    const publish = (events: Array.NonEmptyReadonlyArray<OrderEventEnvelope>) =>
      bus.publish(events).pipe(
        Effect.timeoutFail({
          duration: publishTimeout,
          onTimeout: () => `no answer from the bus within ${Duration.format(publishTimeout)}`
        }),
        Effect.zipRight(store.markPublished(events)),
        Effect.catchAll((error) => Effect.logWarning("publish failed; the outbox relay will retry", error)),
        Effect.withSpan("CommandHandler.publish")
      )

    /** `seenVersion`: the caller knows the stream holds at least this version; a read that shows less is stale. */
    const decideAndAppend = <C extends OrderCommand>(command: C, metadata: EventMetadata, seenVersion: number) =>
      Effect.gen(function*() {
        const history = yield* store.read(command.orderId)
        const version = history.length
        if (version < seenVersion) {
          return yield* new StaleRead({ streamId: command.orderId, version: seenVersion, found: version })
        }
        const state = fold(history.map((event) => event.data))
        const decided = yield* decide(command, state)
        const occurredAt = yield* DateTime.now
        const events = Array.map(decided, (data, i) =>
          OrderEventEnvelope.make({
            eventId: crypto.randomUUID(),
            streamId: command.orderId,
            version: version + i + 1,
            type: data._tag,
            occurredAt,
            metadata,
            data
          }, trusted))
        yield* store.append(command.orderId, version, events)
        const order = toOrder(fold(decided, state), version + events.length)
        if (order === undefined) return yield* Effect.dieMessage("an accepted command left no order")
        return { order, events } satisfies CommandResult
      })

    const run = <C extends OrderCommand>(command: C, metadata: EventMetadata, seenVersion: number) =>
      decideAndAppend(command, metadata, seenVersion).pipe(
        Effect.retry({ schedule: conflictRetry, while: (error) => error._tag === "ConcurrencyConflict" }),
        Effect.tap(({ events }) => publish(events)),
        Effect.withSpan("CommandHandler.handle", { attributes: { orderId: command.orderId, command: command._tag } })
      )

    /** Handles a command from outside (an API request). */
    const handle = <C extends OrderCommand>(
      command: C,
      metadata: EventMetadata
    ): Effect.Effect<CommandResult, CommandError<C>> =>
      run(command, metadata, 0).pipe(Effect.catchTag("StaleRead", Effect.die))

    /**
     * Handles a command that an event caused (a consumer's reaction): its
     * events carry the cause's correlation id and the cause as causation, and
     * a read of the store that does not yet show the cause fails with
     * `StaleRead`, so that the consumer does not acknowledge what it has not seen.
     */
    const handleCausedBy = <C extends OrderCommand>(
      command: C,
      cause: OrderEventEnvelope
    ): Effect.Effect<CommandResult, CommandError<C> | StaleRead> =>
      run(
        command,
        EventMetadata.make({ correlationId: cause.metadata.correlationId, causationId: cause.eventId }),
        cause.version
      )

    return { handle, handleCausedBy } as const
  })
}) {}
