/**
 * Publishes what the command handler appended but could not publish (the
 * broker was down, or the process died between append and publish), so that
 * every accepted event reaches the bus.
 *
 * Several servers may run a relay each: they may publish the same backlog
 * entry at about the same time. Such duplicates are harmless (every consumer
 * is idempotent) and bounded: one per relay per entry, and only for entries
 * whose own command failed to publish them.
 */
import { EventBus, parseTraceparent } from "@orders/domain/EventBus"
import { EventStore } from "@orders/domain/EventStore"
import type { ServiceUnavailable } from "@orders/domain/OrderError"
import type { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { Workers } from "@orders/infra/Workers"
import { Array, Config, Context, Duration, Effect, Layer, Metric, Option, Schedule } from "effect"

export const OutboxRelayConfig = Config.all({
  interval: Config.duration("OUTBOX_RELAY_INTERVAL").pipe(Config.withDefault(Duration.seconds(1))),
  batchSize: Config.integer("OUTBOX_RELAY_BATCH").pipe(
    Config.withDefault(500),
    Config.validate({ message: "must be at least 1", validation: (n) => n >= 1 })
  )
})

const relayPublishTimeout = Duration.seconds(10)

/** A failed round (store or broker unreachable) is retried, soon at first, then every 30 s at most. */
const roundRetry = Schedule.exponential(Duration.millis(500)).pipe(
  Schedule.union(Schedule.spaced(Duration.seconds(30)))
)

/** Events the relay published (those their commands could not). */
export const relayedEvents = Metric.counter("orders_relay_published_events_total", {
  description: "Events the outbox relay published, left unpublished by their commands",
  incremental: true
})

/** Publishes by the relay that failed (the round is tried again). */
export const relayFailures = Metric.counter("orders_relay_publish_failures_total", {
  description: "Outbox relay publishes that failed; the round is tried again",
  incremental: true
})

export const makeRelay = (options: { readonly batchSize: number }) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const bus = yield* EventBus

    /** Publishes one stream's events, in the trace of the command that appended the first of them. */
    const publish = (events: Array.NonEmptyReadonlyArray<OrderEventEnvelope>) =>
      bus.publish(events).pipe(
        // A broker that hangs fails this round instead of stalling the relay.
        Effect.timeoutFail({ duration: relayPublishTimeout, onTimeout: () => "bus timed out" }),
        Effect.tapError(() => Metric.increment(relayFailures)),
        Effect.zipRight(store.markPublished(events)),
        Effect.zipRight(Metric.incrementBy(relayedEvents, events.length)),
        Effect.withSpan("OutboxRelay.publish", {
          attributes: { streamId: events[0].streamId, count: events.length },
          ...Option.match(parseTraceparent(events[0].metadata.traceparent), {
            onNone: () => ({ root: true }),
            onSome: (parent) => ({ parent })
          })
        })
      )

    /** One round: publishes the oldest batch of the outbox; returns how many events it published. */
    return Effect.fnUntraced(function*() {
      // A round runs every second: only its publishes, in their commands' traces, are worth a span.
      const pending = yield* store.unpublished(options.batchSize).pipe(Effect.withTracerEnabled(false))
      const streams = Array.groupBy(pending, (event) => event.streamId)
      for (const events of Object.values(streams)) {
        yield* publish(events)
      }
      if (pending.length > 0) yield* Effect.logInfo(`relayed ${pending.length} unpublished events`)
      return pending.length
    })
  })

/**
 * Rounds back to back while the outbox holds full batches, else one per
 * interval. Expected failures are logged and retried; anything else stops the
 * loop, which ends the program (see `Workers`).
 */
export const relayLoop = (options: { readonly batchSize: number; readonly interval: Duration.Duration }) =>
  Effect.gen(function*() {
    const relayOnce = yield* makeRelay(options)
    return yield* relayOnce().pipe(
      Effect.tapError((error) => Effect.logWarning("outbox relay round failed; retrying", error)),
      Effect.retry(roundRetry),
      Effect.flatMap((relayed) => relayed >= options.batchSize ? Effect.void : Effect.sleep(options.interval)),
      Effect.forever
    )
  })

/** How far behind the outbox is; not every store can tell. */
export interface Backlog {
  /** Appends not yet known to be published. */
  readonly entries: number
  /** How long ago the oldest of them was appended. */
  readonly oldest: Option.Option<Duration.Duration>
}

/** A store that can tell its outbox backlog provides this beside the `EventStore`. */
export class OutboxBacklog extends Context.Tag("orders/OutboxBacklog")<OutboxBacklog, {
  readonly backlog: () => Effect.Effect<Backlog, ServiceUnavailable>
}>() {}

export const outboxEntries = Metric.gauge("orders_outbox_entries", {
  description: "Appends in the outbox, not yet known to be published"
})

export const outboxOldestAge = Metric.gauge("orders_outbox_oldest_age_seconds", {
  description: "Age of the oldest append in the outbox (0 when it is empty)"
})

/** How often the backlog is measured: it may scan the outbox. */
const backlogInterval = Duration.seconds(15)

/** Keeps the outbox gauges up to date; a store that does not answer leaves them as they were. */
export const backlogLoop = (outbox: OutboxBacklog["Type"]) =>
  outbox.backlog().pipe(
    Effect.flatMap(({ entries, oldest }) =>
      Effect.zipRight(
        Metric.set(outboxEntries, entries),
        Metric.set(outboxOldestAge, Option.match(oldest, { onNone: () => 0, onSome: Duration.toSeconds }))
      )
    ),
    Effect.catchAll((error) => Effect.logDebug("cannot measure the outbox backlog", error)),
    Effect.withTracerEnabled(false),
    Effect.zipRight(Effect.sleep(backlogInterval)),
    Effect.forever
  )

export const OutboxRelayLive = Layer.scopedDiscard(Effect.gen(function*() {
  const workers = yield* Workers
  yield* workers.run("outbox relay", relayLoop(yield* OutboxRelayConfig))
  const outbox = yield* Effect.serviceOption(OutboxBacklog)
  if (Option.isSome(outbox)) yield* workers.run("outbox backlog gauges", backlogLoop(outbox.value))
}))
