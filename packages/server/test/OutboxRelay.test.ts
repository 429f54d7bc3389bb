import { describe, expect, it } from "@effect/vitest"
import * as EventBus from "@orders/domain/EventBus"
import * as EventStore from "@orders/domain/EventStore"
import { OrderEventEnvelope, OrderId } from "@orders/domain/OrderEvent"
import { DateTime, Duration, Effect, Layer, Ref } from "effect"
import { lifecycle } from "../../domain/test/fixtures.js"
import { makeRelay } from "../src/OutboxRelay.js"

describe("OutboxRelay", () => {
  it.live("publishes appended events that were never published, in order, then marks them", () =>
    Effect.gen(function*() {
      const store = yield* EventStore.EventStore
      const bus = yield* EventBus.EventBus
      const orderId = OrderId.make("o-1")
      const events = lifecycle(orderId, 3)
      // Appended, then the process died before publishing.
      yield* store.append(orderId, 0, [events[0]!, events[1]!])
      yield* store.append(orderId, 2, [events[2]!])
      const relayOnce = yield* makeRelay({ grace: Duration.zero, batchSize: 100 })
      expect(yield* relayOnce()).toBe(3)
      expect(yield* store.unpublished(100)).toEqual([])
      expect(yield* relayOnce()).toBe(0)

      const received = yield* Ref.make<ReadonlyArray<number>>([])
      yield* bus.subscribe("check", (event) => Ref.update(received, (all) => [...all, event.version]))
      yield* Effect.sleep(Duration.millis(50))
      expect(yield* Ref.get(received)).toEqual([1, 2, 3])
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(EventStore.layerMemory, EventBus.layerMemory))))

  it.live("leaves fresh events to the command handler publishing them", () =>
    Effect.gen(function*() {
      const store = yield* EventStore.EventStore
      const orderId = OrderId.make("o-2")
      const justAppended = OrderEventEnvelope.make({ ...lifecycle(orderId, 1)[0]!, occurredAt: yield* DateTime.now })
      yield* store.append(orderId, 0, [justAppended])
      const relayOnce = yield* makeRelay({ grace: Duration.hours(1), batchSize: 100 })
      expect(yield* relayOnce()).toBe(0)
      expect(yield* store.unpublished(100)).toHaveLength(1)
    }).pipe(Effect.provide(Layer.merge(EventStore.layerMemory, EventBus.layerMemory))))
})
