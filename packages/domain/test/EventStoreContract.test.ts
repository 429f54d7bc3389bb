import { describe, expect, it } from "@effect/vitest"
import { Array as Arr, Duration, Effect, TestClock } from "effect"
import * as EventStore from "../src/EventStore.js"
import { OrderEventEnvelope } from "../src/OrderEvent.js"
import { eventStoreProperties } from "./contract/EventStoreContract.js"
import { lifecycle, propertyVerdict, uniqueOrderId } from "./fixtures.js"

/** A store with one flaw, made by altering the honest in-memory store, and the contract property that must catch it. */
interface WrongStore {
  readonly flaw: string
  readonly caughtBy: keyof typeof eventStoreProperties
  readonly alter: (store: EventStore.EventStoreShape) => EventStore.EventStoreShape
}

const everything = Number.MAX_SAFE_INTEGER

/** The store, remembering every append it accepted, in order: to hand them out in another order. */
const handingOutAppends = (
  store: EventStore.EventStoreShape,
  pick: (appends: ReadonlyArray<ReadonlyArray<OrderEventEnvelope>>, limit: number) => ReadonlyArray<
    ReadonlyArray<OrderEventEnvelope>
  >
): EventStore.EventStoreShape => {
  const appends: Array<ReadonlyArray<OrderEventEnvelope>> = []
  return {
    ...store,
    append: (streamId, expectedVersion, events) =>
      store.append(streamId, expectedVersion, events).pipe(Effect.tap(() => appends.push(events))),
    unpublished: (limit) =>
      Effect.map(store.unpublished(everything), (pending) => {
        const ids = new Set(pending.map((event) => event.eventId))
        return pick(appends.filter((events) => ids.has(events[0]!.eventId)), limit).flat()
      })
  }
}

const wrongStores: ReadonlyArray<WrongStore> = [
  {
    // What both stores did before: markPublished(streamId, version).
    flaw: "clears every earlier event of the order when marking events published",
    caughtBy: "marks exactly the events given: an earlier append left unpublished stays in the outbox",
    alter: (store) => ({
      ...store,
      markPublished: (events) =>
        store.read(Arr.lastNonEmpty(events).streamId).pipe(
          Effect.map(Arr.filter((event) => event.version <= Arr.lastNonEmpty(events).version)),
          Effect.flatMap((earlier) => Arr.isNonEmptyReadonlyArray(earlier) ? store.markPublished(earlier) : Effect.void)
        )
    })
  },
  {
    flaw: "ignores the limit",
    caughtBy: "hands out the events of at most `limit` appends, each whole",
    alter: (store) => ({ ...store, unpublished: () => store.unpublished(everything) })
  },
  {
    flaw: "counts the limit in events, cutting appends",
    caughtBy: "hands out the events of at most `limit` appends, each whole",
    alter: (store) => ({ ...store, unpublished: (limit) => Effect.map(store.unpublished(everything), Arr.take(limit)) })
  },
  {
    flaw: "accepts a stale expected version (the last writer wins)",
    caughtBy: "rejects a stale expected version and appends nothing",
    alter: (store) => ({
      ...store,
      append: (streamId, _expectedVersion, events) =>
        Effect.flatMap(store.read(streamId), (history) =>
          store.append(
            streamId,
            history.length,
            Arr.map(events, (event, i) => OrderEventEnvelope.make({ ...event, version: history.length + i + 1 }))
          ))
    })
  },
  {
    flaw: "hands out the newest appends first",
    caughtBy: "hands out the oldest appends first, each order's events in version order",
    alter: (store) => handingOutAppends(store, (appends, limit) => [...appends].reverse().slice(0, limit))
  }
]

const check = (property: WrongStore["caughtBy"], store: Effect.Effect<EventStore.EventStoreShape>) =>
  eventStoreProperties[property].pipe(
    Effect.provideServiceEffect(EventStore.EventStore, store),
    Effect.exit,
    Effect.map(propertyVerdict)
  )

describe("each EventStore contract property can fail", () => {
  for (const { alter, caughtBy, flaw } of wrongStores) {
    it.effect(`"${caughtBy}" holds for the in-memory store, and fails for one that ${flaw}`, () =>
      Effect.gen(function*() {
        expect(yield* check(caughtBy, EventStore.makeMemory())).toBe("holds")
        expect(yield* check(caughtBy, Effect.map(EventStore.makeMemory(), alter))).toBe("fails an assertion")
      }))
  }
})

describe("EventStore in memory", () => {
  it.effect("holds back a fresh append for the grace it was given", () =>
    Effect.gen(function*() {
      const store = yield* EventStore.makeMemory({ grace: Duration.hours(1) })
      const [created] = lifecycle(uniqueOrderId(), 1)
      yield* store.append(created!.streamId, 0, [created!])
      yield* TestClock.adjust(Duration.minutes(59))
      expect(yield* store.unpublished(10)).toEqual([])
      yield* TestClock.adjust(Duration.minutes(1))
      expect(yield* store.unpublished(10)).toEqual([created])
    }))
})
