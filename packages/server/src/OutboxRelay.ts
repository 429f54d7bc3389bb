/**
 * Publishes what the command handler appended but could not publish (the
 * broker was down, or the process died between append and publish), so that
 * every accepted event reaches the bus.
 */
import { EventBus } from "@orders/domain/EventBus"
import { EventStore } from "@orders/domain/EventStore"
import { Array, Config, DateTime, Duration, Effect, Layer, Schedule } from "effect"

export const OutboxRelayConfig = Config.all({
  interval: Config.duration("OUTBOX_RELAY_INTERVAL").pipe(Config.withDefault(Duration.seconds(1))),
  /** Leave fresh events to the command handler that is publishing them right now. */
  grace: Config.duration("OUTBOX_RELAY_GRACE").pipe(Config.withDefault(Duration.seconds(5))),
  batchSize: Config.integer("OUTBOX_RELAY_BATCH").pipe(Config.withDefault(500))
})

const relayPublishTimeout = Duration.seconds(10)

export const makeRelay = (options: { readonly grace: Duration.Duration; readonly batchSize: number }) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const bus = yield* EventBus
    return Effect.fn("OutboxRelay.relayOnce")(function*() {
      const now = yield* DateTime.now
      const ripe = (yield* store.unpublished(options.batchSize)).filter((event) =>
        Duration.greaterThanOrEqualTo(DateTime.distanceDuration(event.occurredAt, now), options.grace)
      )
      const streams = Array.groupBy(ripe, (event) => event.streamId)
      for (const events of Object.values(streams)) {
        // A broker that hangs fails this round instead of stalling the relay; the next round retries.
        yield* bus.publish(events).pipe(
          Effect.timeoutFail({ duration: relayPublishTimeout, onTimeout: () => "bus timed out" })
        )
        yield* store.markPublished(Array.lastNonEmpty(events).streamId, Array.lastNonEmpty(events).version)
      }
      if (ripe.length > 0) yield* Effect.logInfo(`relayed ${ripe.length} unpublished events`)
      return ripe.length
    })
  })

export const OutboxRelayLive = Layer.scopedDiscard(Effect.gen(function*() {
  const config = yield* OutboxRelayConfig
  const relayOnce = yield* makeRelay(config)
  yield* relayOnce().pipe(
    Effect.catchAll((error) => Effect.logWarning("outbox relay failed; retrying", error)),
    Effect.repeat(Schedule.spaced(config.interval)),
    Effect.forkScoped
  )
}))
