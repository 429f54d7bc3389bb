import { describe, expect, it } from "@effect/vitest"
import { Effect, Ref } from "effect"
import * as EventBus from "../src/EventBus.js"
import * as EventStore from "../src/EventStore.js"
import type { OrderEventEnvelope } from "../src/OrderEvent.js"
import * as OrderReadModel from "../src/OrderReadModel.js"
import { eventBusContract } from "./contract/EventBusContract.js"
import { eventStoreContract } from "./contract/EventStoreContract.js"
import { orderReadModelContract } from "./contract/OrderReadModelContract.js"
import { lifecycle, uniqueOrderId, waitFor } from "./fixtures.js"

eventStoreContract("in memory", EventStore.layerMemory)
eventBusContract("in memory", EventBus.layerMemory)
orderReadModelContract("in memory", OrderReadModel.layerMemory)

describe("EventBus in memory", () => {
  it.live("handles other orders while one order's handler is slow, and each order in version order", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.makeMemory
      const slow = lifecycle(uniqueOrderId("slow"))
      const fast = lifecycle(uniqueOrderId("fast"))
      const handled = yield* Ref.make<ReadonlyArray<string>>([])
      yield* bus.subscribe(
        "g",
        (event) =>
          Effect.sleep(event.streamId === slow[0]!.streamId ? "300 millis" : "1 millis").pipe(
            Effect.zipRight(Ref.update(handled, (all) => [...all, `${event.streamId}@${event.version}`]))
          )
      )
      yield* bus.publish([...slow, ...fast])
      const all = yield* waitFor(Ref.get(handled), (all) => all.length === 6)
      const key = (events: ReadonlyArray<OrderEventEnvelope>, i: number) => `${events[0]!.streamId}@${i}`
      // The fast order finished before the slow one got past its first event.
      expect(all.slice(0, 4)).toEqual([key(fast, 1), key(fast, 2), key(fast, 3), key(slow, 1)])
      expect(all.slice(4)).toEqual([key(slow, 2), key(slow, 3)])
    }).pipe(Effect.scoped))
})
