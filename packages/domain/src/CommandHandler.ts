/**
 * The one way orders change: load the stream, fold it, decide, append with
 * optimistic concurrency, publish. Shared by the API and the processor.
 *
 * @since 0.1.0
 */
import { Array, Cause, DateTime, Duration, Effect, Exit, FiberSet, Metric, Option, Schedule, Schema } from "effect"
import { currentTraceparent, EventBus } from "./EventBus.js"
import { EventStore } from "./EventStore.js"
import type { Order } from "./Order.js"
import { fold, toOrder } from "./Order.js"
import { OrderCommand } from "./OrderCommand.js"
import type { Refusal } from "./OrderDecider.js"
import { decide } from "./OrderDecider.js"
import type { AppendOutcomeUnknown, ConcurrencyConflict, ServiceUnavailable } from "./OrderError.js"
import { StaleRead } from "./OrderError.js"
import { EventMetadata, OrderEventEnvelope } from "./OrderEvent.js"
import { traced } from "./Tracing.js"
import { trusted } from "./Trusted.js"

export interface CommandResult {
  /** The order after the command. */
  readonly order: Order
  readonly events: Array.NonEmptyReadonlyArray<OrderEventEnvelope>
  /** True when the command had already been handled under its idempotency key: nothing was appended this time. */
  readonly replayed: boolean
}

/** The caller decided on a version of the order that is no longer (or not yet) the current one. */
export class VersionMismatch extends Schema.TaggedError<VersionMismatch>()("VersionMismatch", {
  orderId: Schema.String,
  expectedVersion: Schema.Int,
  actualVersion: Schema.Int,
  message: Schema.String
}) {
  static of(orderId: string, expectedVersion: number, actualVersion: number) {
    return new VersionMismatch({
      orderId,
      expectedVersion,
      actualVersion,
      message: `order '${orderId}' is at version ${actualVersion}, not ${expectedVersion}`
    }, trusted)
  }
}

/** An idempotency key already used on this order for a different command. */
export class IdempotencyKeyReused extends Schema.TaggedError<IdempotencyKeyReused>()("IdempotencyKeyReused", {
  orderId: Schema.String,
  idempotencyKey: Schema.String,
  message: Schema.String
}) {
  static of(orderId: string, idempotencyKey: string) {
    return new IdempotencyKeyReused({
      orderId,
      idempotencyKey,
      message: `the idempotency key was already used on order '${orderId}' for a different request`
    }, trusted)
  }
}

export type CommandError<C extends OrderCommand> =
  | Refusal<C>
  | ConcurrencyConflict
  | ServiceUnavailable
  | AppendOutcomeUnknown

/** A command from outside may also fail on the caller's own conditions: on a version only if it named one. */
export type RequestError<C extends OrderCommand, O extends CommandOptions = CommandOptions> =
  | CommandError<C>
  | IdempotencyKeyReused
  | ("expectedVersion" extends keyof O ? VersionMismatch : never)

/** What a caller from outside may require of a command besides its data. */
export interface CommandOptions {
  /** Decide only on this version of the order (an HTTP `If-Match`); any other fails with `VersionMismatch`. */
  readonly expectedVersion?: number
}

/** Looks at the stream before deciding: a result to answer with instead, or nothing to go on deciding. */
type Precheck<E extends { readonly _tag: string }> = (
  history: ReadonlyArray<OrderEventEnvelope>
) => Effect.Effect<CommandResult | undefined, E>

const noPrecheck: Precheck<never> = () => Effect.succeed(undefined)

const encodeCommand = Schema.encodeSync(OrderCommand)

/** JSON with object keys sorted: equal commands give equal text. */
const canonicalJson = (value: unknown): string =>
  JSON.stringify(
    value,
    (_key, field: unknown) =>
      field !== null && typeof field === "object" && !globalThis.Array.isArray(field)
        ? Object.fromEntries(Object.entries(field).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : field
  )

/** SHA-256 (hex) of the command's canonical JSON, with the platform's Web Crypto: the domain depends on `effect` only. */
export const requestHash = (command: OrderCommand): Effect.Effect<string> =>
  Effect.promise(() => crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonicalJson(encodeCommand(command)))))
    .pipe(
      Effect.map((digest) => [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join(""))
    )

/**
 * The result a keyed command had when it was first handled: the order folded
 * up to its last event, and its events (those the key is on, appended together).
 */
const earlierResult = (
  history: ReadonlyArray<OrderEventEnvelope>,
  idempotencyKey: string
): { readonly result: CommandResult; readonly requestHash: string | undefined } | undefined => {
  const first = history.findIndex((event) => event.metadata.idempotencyKey === idempotencyKey)
  if (first === -1) return undefined
  let end = first + 1
  while (end < history.length && history[end]!.metadata.idempotencyKey === idempotencyKey) end++
  const events = history.slice(first, end) as unknown as Array.NonEmptyReadonlyArray<OrderEventEnvelope>
  const order = toOrder(fold(history.slice(0, end).map((event) => event.data)), end)
  if (order === undefined) return undefined
  return { result: { order, events, replayed: true }, requestHash: events[0].metadata.requestHash }
}

/** How long a command waits for the bus before leaving its events to the outbox relay. */
export const publishTimeout = Duration.seconds(2)

/** How long a stopping command handler waits for the marks it started to land. */
export const marksDrainTimeout = Duration.seconds(2)

/**
 * A writer that lost a race decides again on the fresh state: a second
 * creation then answers "already exists", a second processing request
 * "already processing". Bounded, jittered: a hot order still answers 409.
 */
export const conflictRetry = Schedule.exponential(Duration.millis(5)).pipe(
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(4))
)

/** Commands handled, by command and outcome: `accepted`, `replayed` (idempotency key), or the error's tag. */
export const commandsHandled = Metric.counter("orders_commands_total", {
  description: "Commands handled, by command and outcome (accepted, replayed, or the error's tag)",
  incremental: true
})

/** Appends that lost a race to another writer, by command (each is decided again, a few times at most). */
export const concurrencyConflicts = Metric.counter("orders_concurrency_conflicts_total", {
  description: "Appends refused because another writer appended first, by command",
  incremental: true
})

/** Events appended to the event store, by event type. */
export const eventsAppended = Metric.counter("orders_events_appended_total", {
  description: "Events appended to the event store, by event type",
  incremental: true
})

const outcomeOf = (exit: Exit.Exit<CommandResult, { readonly _tag: string }>): string =>
  Exit.match(exit, {
    onSuccess: (result) => result.replayed ? "replayed" : "accepted",
    onFailure: (cause) =>
      Option.match(Cause.failureOption(cause), {
        onSome: (error) => error._tag,
        onNone: () => Cause.isInterruptedOnly(cause) ? "interrupted" : "defect"
      })
  })

/** Answers that a decision on a stale prefix of the stream could have caused. */
const mayBeStale: ReadonlySet<string> = new Set([
  "ConcurrencyConflict",
  "StaleRead",
  "VersionMismatch",
  "OrderNotFound",
  "OrderAlreadyExists",
  "InvalidOrderTransition"
])

export class CommandHandler extends Effect.Service<CommandHandler>()("orders/CommandHandler", {
  scoped: Effect.gen(function*() {
    const store = yield* EventStore
    const bus = yield* EventBus
    const marking = yield* FiberSet.make<void>()
    // Added after the set, so run before it interrupts what is left: a mark cut short leaves its events
    // in the outbox, and the relay of the next run publishes them again.
    yield* Effect.addFinalizer(() =>
      FiberSet.awaitEmpty(marking).pipe(Effect.interruptible, Effect.timeoutOption(marksDrainTimeout))
    )

    /**
     * Publishing is best effort here: the events are already durable in the
     * outbox, and the relay republishes whatever is not marked. So a command
     * waits for the bus only briefly: a broker that hangs must not hang the API.
     * Only what the bus acknowledged is marked, and the command does not wait
     * for the mark: a mark that never lands costs a duplicate publish, which
     * every consumer absorbs, and a store may gather marks for a while.
     */
    const publish = (events: Array.NonEmptyReadonlyArray<OrderEventEnvelope>) =>
      bus.publish(events).pipe(
        Effect.timeoutFail({
          duration: publishTimeout,
          onTimeout: () => `no answer from the bus within ${Duration.format(publishTimeout)}`
        }),
        Effect.zipRight(
          FiberSet.run(
            marking,
            store.markPublished(events).pipe(
              Effect.catchAll((error) =>
                Effect.logWarning("marking published failed; the outbox relay will publish again", error)
              )
            )
          )
        ),
        Effect.catchAll((error) => Effect.logWarning("publish failed; the outbox relay will retry", error)),
        traced("CommandHandler.publish")
      )

    /**
     * `seenVersion`: the caller knows the stream holds at least this version; a
     * read that shows less is stale. `fresh`: read the store, rather than take
     * the stream as this process knows it (see `run`).
     */
    const decideAndAppend = <C extends OrderCommand, E extends { readonly _tag: string }>(
      command: C,
      metadata: EventMetadata,
      seenVersion: number,
      precheck: Precheck<E>,
      fresh: boolean
    ) =>
      Effect.gen(function*() {
        const history = yield* (fresh ? store.read(command.orderId) : store.readKnown(command.orderId, seenVersion))
          .pipe(
            traced("CommandHandler.load", { attributes: { fresh } })
          )
        const version = history.length
        if (version < seenVersion) {
          return yield* new StaleRead({ streamId: command.orderId, version: seenVersion, found: version })
        }
        const answered = yield* precheck(history)
        if (answered !== undefined) return answered
        const state = fold(history.map((event) => event.data))
        const decided = yield* decide(command, state).pipe(traced("CommandHandler.decide"))
        const occurredAt = yield* DateTime.now
        // The command's span: its consumers' work joins its trace.
        const traceparent = yield* currentTraceparent
        const eventMetadata = EventMetadata.make({
          ...metadata,
          ...(traceparent === undefined ? {} : { traceparent }),
          append: { first: version + 1, last: version + decided.length }
        }, trusted)
        const events = Array.map(decided, (data, i) =>
          OrderEventEnvelope.make({
            eventId: crypto.randomUUID(),
            streamId: command.orderId,
            version: version + i + 1,
            type: data._tag,
            occurredAt,
            metadata: eventMetadata,
            data
          }, trusted))
        yield* store.append(command.orderId, version, events).pipe(
          Effect.tapErrorTag(
            "ConcurrencyConflict",
            () => Metric.increment(Metric.tagged(concurrencyConflicts, "command", command._tag))
          ),
          traced("CommandHandler.append", { attributes: { expectedVersion: version, count: events.length } })
        )
        yield* Effect.forEach(
          events,
          (event) => Metric.increment(Metric.tagged(eventsAppended, "type", event.type)),
          { discard: true }
        )
        const order = toOrder(fold(decided, state), version + events.length)
        if (order === undefined) return yield* Effect.dieMessage("an accepted command left no order")
        return { order, events, replayed: false } satisfies CommandResult
      })

    /**
     * Decides first on the stream as this process knows it, without a round
     * trip (a create, on nothing at all): the append's expected version makes
     * that safe, since a stale prefix meets a `ConcurrencyConflict`. Any answer
     * that a stale prefix could have caused (a conflict, a refusal, a version
     * mismatch, a stale read) is then decided again on a fresh read, and a
     * writer that lost a race decides again on fresh state.
     */
    const run = <C extends OrderCommand, E extends { readonly _tag: string }>(
      command: C,
      metadata: EventMetadata,
      seenVersion: number,
      precheck: Precheck<E>
    ) =>
      decideAndAppend(command, metadata, seenVersion, precheck, false).pipe(
        Effect.catchIf(
          (error) => mayBeStale.has(error._tag),
          () =>
            decideAndAppend(command, metadata, seenVersion, precheck, true).pipe(
              Effect.retry({ schedule: conflictRetry, while: (error) => error._tag === "ConcurrencyConflict" })
            )
        ),
        // A replay appended nothing: its events were published (or left to the relay) the first time.
        Effect.tap((result) => result.replayed ? Effect.void : publish(result.events)),
        Effect.onExit((exit) =>
          Metric.increment(
            Metric.tagged(Metric.tagged(commandsHandled, "command", command._tag), "outcome", outcomeOf(exit))
          )
        ),
        Effect.annotateLogs({ correlationId: metadata.correlationId }),
        traced("CommandHandler.handle", { attributes: { orderId: command.orderId, command: command._tag } })
      )

    /**
     * Handles a command from outside (an API request). When `metadata` carries
     * an idempotency key, the events keep it with the command's hash: the same
     * command again under that key is answered with the first result and
     * appends nothing; another command under it fails with `IdempotencyKeyReused`.
     */
    const handle = <C extends OrderCommand, O extends CommandOptions = {}>(
      command: C,
      metadata: EventMetadata,
      options?: O
    ): Effect.Effect<CommandResult, RequestError<C, O>> =>
      Effect.gen(function*() {
        const { idempotencyKey } = metadata
        const keyed = idempotencyKey === undefined
          ? metadata
          : EventMetadata.make({ ...metadata, requestHash: yield* requestHash(command) }, trusted)
        // The key first: a retry must not fail because its first attempt moved the order past `expectedVersion`.
        const precheck: Precheck<VersionMismatch | IdempotencyKeyReused> = (history) => {
          const earlier = idempotencyKey === undefined ? undefined : earlierResult(history, idempotencyKey)
          if (earlier !== undefined) {
            return earlier.requestHash === keyed.requestHash
              ? Effect.succeed(earlier.result)
              : Effect.fail(IdempotencyKeyReused.of(command.orderId, idempotencyKey!))
          }
          const expectedVersion = options?.expectedVersion
          return expectedVersion !== undefined && expectedVersion !== history.length
            ? Effect.fail(VersionMismatch.of(command.orderId, expectedVersion, history.length))
            : Effect.succeed(undefined)
        }
        return yield* run(command, keyed, 0, precheck)
        // `VersionMismatch` needs an `expectedVersion`: the type says so, which the checks above cannot show.
      }).pipe(Effect.catchTag("StaleRead", Effect.die)) as Effect.Effect<CommandResult, RequestError<C, O>>

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
        cause.version,
        noPrecheck
      )

    return { handle, handleCausedBy } as const
  })
}) {}
