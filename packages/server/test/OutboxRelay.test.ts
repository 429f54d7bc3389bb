import { describe, expect, it } from "@effect/vitest"
import * as EventBus from "@orders/domain/EventBus"
import * as EventStore from "@orders/domain/EventStore"
import { OrderId } from "@orders/domain/Order"
import { ServiceUnavailable } from "@orders/domain/OrderError"
import { lifecycle } from "@orders/domain/testing/fixtures"
import { launch } from "@orders/infra/Program"
import { Cause, Duration, Effect, Exit, Fiber, Layer, Ref, TestClock } from "effect"
import { makeRelay, OutboxRelayLive, relayLoop } from "../src/OutboxRelay.js"

const noGrace = Layer.effect(EventStore.EventStore, EventStore.makeMemory({ grace: Duration.zero }))

/** The events a group of the bus received, by version, per order. */
const received = (group: string) =>
  Effect.gen(function*() {
    const bus = yield* EventBus.EventBus
    const into = yield* Ref.make<ReadonlyArray<string>>([])
    yield* bus.subscribe(group, (event) => Ref.update(into, (all) => [...all, `${event.streamId}@${event.version}`]))
    return into
  })

describe("OutboxRelay", () => {
  it.live("publishes appended events that were never published, in order, then marks them", () =>
    Effect.gen(function*() {
      const store = yield* EventStore.EventStore
      const orderId = OrderId.make("o-1")
      const events = lifecycle(orderId, 3)
      // Appended, then the process died before publishing.
      yield* store.append(orderId, 0, [events[0]!, events[1]!])
      yield* store.append(orderId, 2, [events[2]!])
      const into = yield* received("check")
      const relayOnce = yield* makeRelay({ batchSize: 100 })
      expect(yield* relayOnce()).toBe(3)
      expect(yield* store.unpublished(100)).toEqual([])
      expect(yield* relayOnce()).toBe(0)
      yield* Effect.sleep(Duration.millis(100))
      expect(yield* Ref.get(into)).toEqual(["o-1@1", "o-1@2", "o-1@3"])
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(noGrace, EventBus.layerMemory))))

  it.effect("drains a backlog larger than one batch, a batch per round", () =>
    Effect.gen(function*() {
      const store = yield* EventStore.EventStore
      for (let i = 0; i < 7; i++) {
        const orderId = OrderId.make(`backlog-${i}`)
        yield* store.append(orderId, 0, [lifecycle(orderId, 1)[0]!])
      }
      const relayOnce = yield* makeRelay({ batchSize: 3 })
      expect([yield* relayOnce(), yield* relayOnce(), yield* relayOnce(), yield* relayOnce()]).toEqual([3, 3, 1, 0])
    }).pipe(Effect.provide(Layer.merge(noGrace, EventBus.layerMemory))))

  it.effect("keeps going when the bus fails for a while: the events wait in the outbox and are published later", () =>
    Effect.gen(function*() {
      const store = yield* EventStore.EventStore
      const orderId = OrderId.make("o-3")
      yield* store.append(orderId, 0, [lifecycle(orderId, 1)[0]!])
      const loop = yield* Effect.fork(relayLoop({ batchSize: 10, interval: Duration.seconds(1) }))
      yield* TestClock.adjust(Duration.seconds(5))
      expect(yield* store.unpublished(10)).toHaveLength(1)
      yield* Ref.set(busIsUp, true)
      yield* TestClock.adjust(Duration.minutes(1))
      expect(yield* store.unpublished(10)).toEqual([])
      expect(loop.unsafePoll()).toBeNull()
      yield* Fiber.interrupt(loop)
    }).pipe(Effect.provide(Layer.merge(noGrace, flakyBus))))

  it.effect("ends the program, instead of dying silently, when a round meets the unexpected", () =>
    Effect.gen(function*() {
      const corruptStore = Layer.effect(
        EventStore.EventStore,
        Effect.map(EventStore.makeMemory(), (store) => ({
          ...store,
          unpublished: () => Effect.dieMessage("event store corrupt: a commit does not decode")
        }))
      )
      const exit = yield* Effect.exit(
        launch(OutboxRelayLive.pipe(Layer.provide(Layer.merge(corruptStore, EventBus.layerMemory))))
      )
      expect(exit).toMatchObject({ _tag: "Failure" })
      expect(String(Exit.isFailure(exit) && Cause.squash(exit.cause))).toContain("outbox relay stopped")
    }))
})

/** A bus that refuses every publish until the test sets `busIsUp`. */
const busIsUp = Ref.unsafeMake(false)
const flakyBus = Layer.effect(
  EventBus.EventBus,
  Effect.map(EventBus.makeMemory(), (bus) => ({
    ...bus,
    publish: (events) =>
      Ref.get(busIsUp).pipe(
        Effect.flatMap((up) =>
          up ? bus.publish(events) : Effect.fail(new ServiceUnavailable({ service: "test bus", message: "down" }))
        )
      )
  }))
)
