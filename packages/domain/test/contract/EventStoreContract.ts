import { expect, layer } from "@effect/vitest"
import type { Layer } from "effect"
import { Effect, Either } from "effect"
import { EventStore } from "../../src/EventStore.js"
import { envelope, lifecycle, uniqueOrderId } from "../fixtures.js"

/** The guarantees every event store gives; run once per implementation. */
export const eventStoreContract = <E>(name: string, storeLayer: Layer.Layer<EventStore, E>) =>
  layer(storeLayer, { excludeTestServices: true })(`EventStore contract: ${name}`, (it) => {
    it.effect("reads an unknown stream as empty", () =>
      Effect.gen(function*() {
        const store = yield* EventStore
        expect(yield* store.read(uniqueOrderId())).toEqual([])
      }))

    it.effect("appends several events at once and reads them back in version order, decoded", () =>
      Effect.gen(function*() {
        const store = yield* EventStore
        const orderId = uniqueOrderId()
        const [created, requested, processed] = lifecycle(orderId)
        yield* store.append(orderId, 0, [created!])
        yield* store.append(orderId, 1, [requested!, processed!])
        expect(yield* store.read(orderId)).toEqual([created, requested, processed])
      }))

    it.effect("rejects a stale expected version and appends nothing", () =>
      Effect.gen(function*() {
        const store = yield* EventStore
        const orderId = uniqueOrderId()
        const [created, requested, processed] = lifecycle(orderId)
        yield* store.append(orderId, 0, [created!, requested!])
        const stale = yield* Effect.either(store.append(orderId, 1, [envelope(2, processed!.data)]))
        expect(Either.isLeft(stale) && stale.left._tag).toBe("ConcurrencyConflict")
        const recreate = yield* Effect.either(store.append(orderId, 0, [created!]))
        expect(Either.isLeft(recreate) && recreate.left._tag).toBe("ConcurrencyConflict")
        expect(yield* store.read(orderId)).toEqual([created, requested])
      }))

    it.effect("rejects an expected version ahead of the stream", () =>
      Effect.gen(function*() {
        const store = yield* EventStore
        const orderId = uniqueOrderId()
        const [created, requested, processed] = lifecycle(orderId)
        yield* store.append(orderId, 0, [created!])
        const ahead = yield* Effect.either(store.append(orderId, 2, [processed!]))
        expect(Either.isLeft(ahead) && ahead.left._tag).toBe("ConcurrencyConflict")
        yield* store.append(orderId, 1, [requested!])
        expect((yield* store.read(orderId)).map((event) => event.version)).toEqual([1, 2])
      }))

    it.effect("lets exactly one of many concurrent writers at the same version win", () =>
      Effect.gen(function*() {
        const store = yield* EventStore
        const orderId = uniqueOrderId()
        const [created, requested] = lifecycle(orderId, 2)
        yield* store.append(orderId, 0, [created!])
        const results = yield* Effect.forEach(
          Array.from({ length: 8 }, () => envelope(2, requested!.data)),
          (event) => Effect.either(store.append(orderId, 1, [event])),
          { concurrency: "unbounded" }
        )
        expect(results.filter(Either.isRight)).toHaveLength(1)
        expect(results.filter(Either.isLeft).map((result) => result.left._tag)).toEqual(
          Array.from({ length: 7 }, () => "ConcurrencyConflict")
        )
        expect(yield* store.read(orderId)).toHaveLength(2)
      }))

    it.effect("keeps appended events in the outbox until they are marked published", () =>
      Effect.gen(function*() {
        const store = yield* EventStore
        const orderId = uniqueOrderId()
        const [created, requested, processed] = lifecycle(orderId)
        const pendingOf = store.unpublished(100_000).pipe(
          Effect.map((events) => events.filter((event) => event.streamId === orderId).map((event) => event.version))
        )
        yield* store.append(orderId, 0, [created!, requested!])
        expect(yield* pendingOf).toEqual([1, 2])
        yield* store.markPublished(orderId, 1)
        expect(yield* pendingOf).toEqual([2])
        yield* store.append(orderId, 2, [processed!])
        yield* store.markPublished(orderId, 3)
        expect(yield* pendingOf).toEqual([])
        // Marking an older version afterwards (a slow publisher) does not bring events back.
        yield* store.markPublished(orderId, 1)
        expect(yield* pendingOf).toEqual([])
      }))
  })
