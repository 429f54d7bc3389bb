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
import { EventBus } from "@orders/domain/EventBus"
import { EventStore } from "@orders/domain/EventStore"
import { Workers } from "@orders/infra/Workers"
import { Array, Config, Duration, Effect, Layer, Schedule } from "effect"

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

export const makeRelay = (options: { readonly batchSize: number }) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const bus = yield* EventBus
    /** One round: publishes the oldest batch of the outbox; returns how many events it published. */
    return Effect.fn("OutboxRelay.relayOnce")(function*() {
      const pending = yield* store.unpublished(options.batchSize)
      const streams = Array.groupBy(pending, (event) => event.streamId)
      for (const events of Object.values(streams)) {
        // A broker that hangs fails this round instead of stalling the relay.
        yield* bus.publish(events).pipe(
          Effect.timeoutFail({ duration: relayPublishTimeout, onTimeout: () => "bus timed out" }),
          Effect.withSpan("OutboxRelay.publish", { attributes: { streamId: events[0].streamId, count: events.length } })
        )
        yield* store.markPublished(events)
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

export const OutboxRelayLive = Layer.scopedDiscard(Effect.gen(function*() {
  const workers = yield* Workers
  yield* workers.run("outbox relay", relayLoop(yield* OutboxRelayConfig))
}))
