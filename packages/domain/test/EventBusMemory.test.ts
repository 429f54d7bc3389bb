import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Ref } from "effect"
import * as EventBus from "../src/EventBus.js"
import type { OrderEventEnvelope } from "../src/OrderEvent.js"
import { fastDeliveryPolicy } from "./contract/EventBusContract.js"
import { lifecycle, uniqueOrderId, waitFor } from "./fixtures.js"

// What the in-memory bus promises beyond the contract (which MemoryAdapters.test.ts runs against it).
describe("EventBus in memory", () => {
  it.live("works on at most 64 orders at a time", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.makeMemory(fastDeliveryPolicy)
      const orders = Array.from({ length: 65 }, () => lifecycle(uniqueOrderId("cap"), 1))
      const [active, mostActive, handled] = yield* Effect.all([Ref.make(0), Ref.make(0), Ref.make(0)])
      const open = yield* Deferred.make<void>()
      yield* bus.subscribe("g", () =>
        Effect.gen(function*() {
          const now = yield* Ref.updateAndGet(active, (n) => n + 1)
          yield* Ref.update(mostActive, (most) => Math.max(most, now))
          yield* Deferred.await(open)
          yield* Ref.update(active, (n) => n - 1)
          yield* Ref.update(handled, (n) => n + 1)
        }))
      yield* bus.publish(orders.flat())
      yield* waitFor(Ref.get(active), (n) => n >= 64)
      yield* Deferred.succeed(open, undefined)
      expect(yield* waitFor(Ref.get(handled), (n) => n === orders.length)).toBe(orders.length)
      expect(yield* Ref.get(mostActive)).toBe(64)
    }).pipe(Effect.scoped))

  it.live("gives a group that subscribes again the events it had not finished, and none it had", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.makeMemory(fastDeliveryPolicy)
      const [unfinished, finished] = [lifecycle(uniqueOrderId("unfinished"), 1), lifecycle(uniqueOrderId("finished"))]
      const journal = yield* Ref.make<ReadonlyArray<OrderEventEnvelope>>([])
      const record = (event: OrderEventEnvelope) => Ref.update(journal, (all) => [...all, event])

      yield* bus.publish([...unfinished, ...finished])
      // The first subscription finishes the events published after one it never finishes.
      yield* Effect.scoped(
        bus.subscribe("g", (event) => event.streamId === unfinished[0]!.streamId ? Effect.never : record(event)).pipe(
          Effect.zipRight(waitFor(Ref.get(journal), (all) => all.length === finished.length)),
          // Let the last handler's fiber mark its event done before the Scope closes.
          Effect.zipRight(Effect.sleep(Duration.millis(50)))
        )
      )
      yield* Ref.set(journal, [])
      const later = lifecycle(uniqueOrderId("later"), 1)
      yield* Effect.scoped(
        bus.subscribe("g", record).pipe(
          Effect.zipRight(bus.publish(later)),
          Effect.zipRight(waitFor(Ref.get(journal), (all) => all.length >= 2))
        )
      )
      expect((yield* Ref.get(journal)).map((event) => event.eventId).sort()).toEqual(
        [unfinished[0]!.eventId, later[0]!.eventId].sort()
      )
    }))

  it.live("stops the consumer, loudly, when a handler interrupts itself and leaves its order stuck", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.makeMemory(fastDeliveryPolicy)
      const subscription = yield* bus.subscribe("g", () => Effect.interrupt)
      yield* bus.publish(lifecycle(uniqueOrderId("interrupted"), 1))
      const stopped = yield* subscription.stopped.pipe(Effect.flip, Effect.timeout(Duration.seconds(5)))
      expect(stopped).toBeInstanceOf(EventBus.ConsumerStopped)
      expect(stopped.group).toBe("g")
    }).pipe(Effect.scoped))
})
