import { describe, expect, it } from "@effect/vitest"
import type { Layer } from "effect"
import { Cause, Duration, Effect, Either, Exit, Fiber, TestClock, TestServices } from "effect"
import { EventStore } from "../../src/EventStore.js"
import type { OrderEventEnvelope } from "../../src/OrderEvent.js"
import { appended, envelope, lifecycle, uniqueOrderId } from "../fixtures.js"

/** One guarantee of the store: passes, or fails with an assertion. Each runs on a fresh store, under the TestClock. */
export type EventStoreProperty = Effect.Effect<void, unknown, EventStore>

const at = (event: OrderEventEnvelope) => `${event.streamId}@${event.version}`

/** Past any store's grace: every append made so far is due. */
const pastGrace = TestClock.adjust(Duration.minutes(1))

/** The whole outbox of the (fresh) store, as `stream@version`. */
const outbox = Effect.flatMap(EventStore, (store) => store.unpublished(1_000)).pipe(
  Effect.map((events) => events.map(at))
)

/** The guarantees every event store gives, each runnable on its own. */
export const eventStoreProperties = {
  "reads an unknown stream as empty": Effect.gen(function*() {
    const store = yield* EventStore
    expect(yield* store.read(uniqueOrderId())).toEqual([])
  }),

  "appends several events at once and reads them back in version order, decoded": Effect.gen(function*() {
    const store = yield* EventStore
    const orderId = uniqueOrderId()
    const [created, requested, processed] = lifecycle(orderId)
    yield* store.append(orderId, 0, [created!])
    yield* store.append(orderId, 1, [requested!, processed!])
    expect(yield* store.read(orderId)).toEqual([created, requested, processed])
  }),

  "knows without asking a prefix of the stream, and what it appended itself": Effect.gen(function*() {
    const store = yield* EventStore
    const orderId = uniqueOrderId()
    const [created, requested, processed] = lifecycle(orderId)
    expect(yield* store.readKnown(orderId)).toEqual([])
    yield* store.append(orderId, 0, [created!])
    yield* store.append(orderId, 1, [requested!, processed!])
    const known = yield* store.readKnown(orderId)
    expect(known).toEqual([created, requested, processed])
    expect(yield* store.read(orderId)).toEqual(known)
  }),

  "takes note of delivered appends without ever deciding on part of one": Effect.gen(function*() {
    const store = yield* EventStore
    const orderId = uniqueOrderId()
    const [created, requested, processed] = lifecycle(orderId)
    const first = appended([created!])
    const second = appended([requested!, processed!, envelope(4, processed!.data)])
    yield* store.append(orderId, 0, first)
    yield* store.append(orderId, 1, second)
    // Delivered: the first append whole, the second in part.
    yield* store.learn([...first, second[0]!])
    expect(yield* store.readKnown(orderId, 1)).toEqual(expect.arrayContaining(first))
    const onPart = yield* Effect.either(store.append(orderId, 2, appended([envelope(3, processed!.data)])))
    expect(Either.isLeft(onPart) && onPart.left._tag).toBe("ConcurrencyConflict")
    expect(yield* store.read(orderId)).toEqual([...first, ...second])
  }),

  "refuses events that name another append than theirs": Effect.gen(function*() {
    const store = yield* EventStore
    const orderId = uniqueOrderId()
    const [created, requested] = lifecycle(orderId, 2)
    const misnamed = [appended([created!, requested!])[0]] as const
    const refused = yield* Effect.exit(store.append(orderId, 0, misnamed))
    expect(Exit.isFailure(refused) && Cause.isDie(refused.cause)).toBe(true)
    expect(yield* store.read(orderId)).toEqual([])
  }),

  "rejects a stale expected version and appends nothing": Effect.gen(function*() {
    const store = yield* EventStore
    const orderId = uniqueOrderId()
    const [created, requested, processed] = lifecycle(orderId)
    yield* store.append(orderId, 0, [created!, requested!])
    const stale = yield* Effect.either(store.append(orderId, 1, [envelope(2, processed!.data)]))
    expect(Either.isLeft(stale) && stale.left._tag).toBe("ConcurrencyConflict")
    const recreate = yield* Effect.either(store.append(orderId, 0, [created!]))
    expect(Either.isLeft(recreate) && recreate.left._tag).toBe("ConcurrencyConflict")
    expect(yield* store.read(orderId)).toEqual([created, requested])
  }),

  "rejects an expected version ahead of the stream": Effect.gen(function*() {
    const store = yield* EventStore
    const orderId = uniqueOrderId()
    const [created, requested, processed] = lifecycle(orderId)
    yield* store.append(orderId, 0, [created!])
    const ahead = yield* Effect.either(store.append(orderId, 2, [processed!]))
    expect(Either.isLeft(ahead) && ahead.left._tag).toBe("ConcurrencyConflict")
    yield* store.append(orderId, 1, [requested!])
    expect((yield* store.read(orderId)).map((event) => event.version)).toEqual([1, 2])
  }),

  "lets exactly one of many concurrent writers at the same version win": Effect.gen(function*() {
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
    yield* pastGrace
    expect(yield* outbox).toEqual([at(created!), `${orderId}@2`])
  }),

  "keeps an append in the outbox until all of its events are marked published": Effect.gen(function*() {
    const store = yield* EventStore
    const orderId = uniqueOrderId()
    const [created, requested, processed] = lifecycle(orderId)
    yield* store.append(orderId, 0, [created!, requested!])
    yield* pastGrace
    expect(yield* outbox).toEqual([at(created!), at(requested!)])
    yield* store.markPublished([created!])
    expect(yield* outbox).toEqual([at(created!), at(requested!)])
    yield* store.markPublished([created!, requested!])
    expect(yield* outbox).toEqual([])
    yield* store.append(orderId, 2, [processed!])
    yield* pastGrace
    yield* store.markPublished([processed!])
    // Marking earlier events again (a slow publisher) brings nothing back.
    yield* store.markPublished([created!, requested!])
    expect(yield* outbox).toEqual([])
  }),

  "marks exactly the events given: an earlier append left unpublished stays in the outbox": Effect.gen(function*() {
    const store = yield* EventStore
    const [created, requested, processed] = lifecycle(uniqueOrderId())
    const orderId = created!.streamId
    yield* store.append(orderId, 0, [created!])
    yield* store.append(orderId, 1, [requested!])
    yield* store.append(orderId, 2, [processed!])
    yield* pastGrace
    // The second command published its event; the first one's publish failed.
    yield* store.markPublished([requested!])
    expect(yield* outbox).toEqual([at(created!), at(processed!)])
    yield* store.markPublished([created!])
    expect(yield* outbox).toEqual([at(processed!)])
  }),

  "hands out the events of at most `limit` appends, each whole": Effect.gen(function*() {
    const store = yield* EventStore
    // One append per order, of 2, 1 and 3 events.
    const appends = [lifecycle(uniqueOrderId(), 2), lifecycle(uniqueOrderId(), 1), lifecycle(uniqueOrderId(), 3)]
    for (const events of appends) {
      yield* store.append(events[0]!.streamId, 0, [events[0]!, ...events.slice(1)])
      yield* TestClock.adjust(Duration.seconds(1))
    }
    yield* pastGrace
    for (const limit of [0, 1, 2, 3, 4]) {
      const batch = yield* store.unpublished(limit)
      const handedOut = appends.filter((events) => batch.some((event) => event.streamId === events[0]!.streamId))
      expect(handedOut).toHaveLength(Math.min(limit, appends.length))
      expect([...batch].map(at).sort()).toEqual(handedOut.flat().map(at).sort())
    }
  }),

  "hands out the oldest appends first, each order's events in version order": Effect.gen(function*() {
    const store = yield* EventStore
    const [a, b, c] = [
      lifecycle(uniqueOrderId("a"), 2),
      lifecycle(uniqueOrderId("b"), 2),
      lifecycle(uniqueOrderId("c"), 1)
    ]
    const inAppendOrder = [a[0]!, b[0]!, a[1]!, c[0]!, b[1]!]
    for (const event of inAppendOrder) {
      yield* store.append(event.streamId, event.version - 1, [event])
      yield* TestClock.adjust(Duration.seconds(1))
    }
    yield* pastGrace
    expect((yield* store.unpublished(2)).map(at)).toEqual(inAppendOrder.slice(0, 2).map(at))
    expect((yield* store.unpublished(3)).map(at)).toEqual(inAppendOrder.slice(0, 3).map(at))
    expect(yield* outbox).toEqual(inAppendOrder.map(at))
  }),

  "leaves a fresh append to its writer for a few seconds, then hands it out": Effect.gen(function*() {
    const store = yield* EventStore
    const [created] = lifecycle(uniqueOrderId(), 1)
    yield* store.append(created!.streamId, 0, [created!])
    expect(yield* outbox).toEqual([])
    yield* pastGrace
    expect(yield* outbox).toEqual([at(created!)])
  }),

  "an interrupted append happened or did not, and the order goes on at the next version": Effect.gen(function*() {
    const store = yield* EventStore
    const orders = Array.from({ length: 30 }, () => lifecycle(uniqueOrderId(), 2))
    for (const [i, [created, requested]] of orders.entries()) {
      const orderId = created!.streamId
      const append = yield* Effect.fork(store.append(orderId, 0, [created!]))
      // Real time, spread over the few milliseconds an append takes on a server.
      yield* TestServices.provideLive(Effect.sleep(Duration.millis(i % 12)))
      yield* Fiber.interrupt(append)
      const history = yield* store.read(orderId)
      expect([[], [created]]).toContainEqual(history)
      if (history.length === 0) yield* store.append(orderId, 0, [created!])
      yield* store.append(orderId, 1, [requested!])
    }
    yield* pastGrace
    // Nothing was marked published: every appended event is in the outbox, once.
    expect([...(yield* outbox)].sort()).toEqual(orders.flat().map(at).sort())
  })
} satisfies Record<string, EventStoreProperty>

/** The guarantees every event store gives; run once per implementation, each property on a fresh store. */
export const eventStoreContract = <E>(name: string, storeLayer: Layer.Layer<EventStore, E>) =>
  describe(`EventStore contract: ${name}`, () => {
    for (const [title, property] of Object.entries(eventStoreProperties)) {
      it.effect(title, () => Effect.provide(property, storeLayer), 30_000)
    }
  })
