import { expect, layer } from "@effect/vitest"
import type { Layer } from "effect"
import { Duration, Effect, Ref } from "effect"
import { EventBus } from "../../src/EventBus.js"
import type { OrderEventEnvelope } from "../../src/OrderEvent.js"
import { lifecycle, uniqueOrderId, waitFor } from "../fixtures.js"

const eventKey = (event: OrderEventEnvelope) => `${event.streamId}@${event.version}`

/** Keeps only the first delivery of each event, for asserting order despite at-least-once redelivery. */
const firstDeliveries = (events: ReadonlyArray<OrderEventEnvelope>) => {
  const seen = new Set<string>()
  return events.filter((event) => !seen.has(eventKey(event)) && seen.add(eventKey(event)))
}

/** The guarantees every event bus gives; run once per implementation. */
export const eventBusContract = <E>(name: string, busLayer: Layer.Layer<EventBus, E>) =>
  layer(busLayer, { excludeTestServices: true, timeout: Duration.minutes(2) })(`EventBus contract: ${name}`, (it) => {
    it.scoped("delivers every event to every consumer group, in order per order", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus
        const orders = Array.from({ length: 5 }, () => lifecycle(uniqueOrderId("bus")))
        const ours = new Set(orders.map((events) => events[0]!.streamId as string))
        // Interleave the orders' events, as concurrent requests would.
        const published = [0, 1, 2].flatMap((i) => orders.map((events) => events[i]!))
        const groups = [`g-${crypto.randomUUID()}`, `g-${crypto.randomUUID()}`]
        const received = yield* Effect.forEach(groups, (group) =>
          Effect.gen(function*() {
            const into = yield* Ref.make<ReadonlyArray<OrderEventEnvelope>>([])
            yield* bus.subscribe(
              group,
              (event) => ours.has(event.streamId) ? Ref.update(into, (all) => [...all, event]) : Effect.void
            )
            return into
          }))
        yield* bus.publish(published)
        for (const into of received) {
          const events = firstDeliveries(
            yield* waitFor(Ref.get(into), (all) => firstDeliveries(all).length >= published.length)
          )
          expect(events.map(eventKey).sort()).toEqual(published.map(eventKey).sort())
          for (const order of ours) {
            expect(events.filter((event) => event.streamId === order).map((event) => event.version)).toEqual([1, 2, 3])
          }
        }
      }))

    it.scoped("delivers an event again when its handler fails, before the order's later events", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus
        const events = lifecycle(uniqueOrderId("redeliver"))
        const orderId = events[0]!.streamId
        const failuresLeft = yield* Ref.make(2)
        const attempts = yield* Ref.make<ReadonlyArray<number>>([])
        yield* bus.subscribe(
          `g-${crypto.randomUUID()}`,
          (event) =>
            event.streamId !== orderId ? Effect.void : Effect.gen(function*() {
              yield* Ref.update(attempts, (all) => [...all, event.version])
              if (event.version === 2 && (yield* Ref.getAndUpdate(failuresLeft, (n) => n - 1)) > 0) {
                return yield* Effect.fail("simulated handler failure")
              }
            })
        )
        yield* bus.publish(events)
        const seen = yield* waitFor(Ref.get(attempts), (all) => all.includes(3))
        expect(seen.filter((version) => version === 2).length).toBeGreaterThanOrEqual(3)
        expect(seen.indexOf(3)).toBeGreaterThan(seen.lastIndexOf(2))
      }))

    it.effect("resumes a consumer group where it left off", () =>
      Effect.gen(function*() {
        const bus = yield* EventBus
        const group = `g-${crypto.randomUUID()}`
        const [first, second] = [lifecycle(uniqueOrderId("resume")), lifecycle(uniqueOrderId("resume"))]
        const ours = new Set([first[0]!.streamId as string, second[0]!.streamId as string])
        const received = yield* Ref.make<ReadonlyArray<OrderEventEnvelope>>([])
        const consume = bus.subscribe(group, (event) =>
          ours.has(event.streamId) ? Ref.update(received, (all) => [...all, event]) : Effect.void)

        yield* bus.publish(first)
        yield* Effect.scoped(consume.pipe(Effect.zipRight(waitFor(Ref.get(received), (all) =>
          all.length >= 3))))
        yield* bus.publish(second)
        yield* Ref.set(received, [])
        const resumed = yield* Effect.scoped(
          consume.pipe(Effect.zipRight(waitFor(Ref.get(received), (all) =>
            all.some((e) =>
              e.streamId === second[0]!.streamId && e.version === 3
            ))))
        )
        expect(firstDeliveries(resumed).filter((e) => e.streamId === second[0]!.streamId).map((e) => e.version))
          .toEqual([1, 2, 3])
        // At least once allows redelivering some of the first order's events, never skipping the second's.
        expect(
          resumed.filter((e) => e.streamId === first[0]!.streamId).length
        ).toBeLessThanOrEqual(3)
      }))
  })
