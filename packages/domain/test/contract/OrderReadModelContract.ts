import { expect, layer } from "@effect/vitest"
import type { Layer } from "effect"
import { Effect, Option } from "effect"
import { Order } from "../../src/Order.js"
import { OrderReadModel } from "../../src/OrderReadModel.js"
import { uniqueOrderId } from "../fixtures.js"

/** The guarantees every read model gives; run once per implementation. */
export const orderReadModelContract = <E>(name: string, readModelLayer: Layer.Layer<OrderReadModel, E>) =>
  layer(readModelLayer, { excludeTestServices: true })(`OrderReadModel contract: ${name}`, (it) => {
    it.effect("gets nothing for an unknown order", () =>
      Effect.gen(function*() {
        const readModel = yield* OrderReadModel
        expect(yield* readModel.get(uniqueOrderId())).toEqual(Option.none())
      }))

    it.effect("stores an order and reads it back, failure reason included", () =>
      Effect.gen(function*() {
        const readModel = yield* OrderReadModel
        const created = Order.make({ id: uniqueOrderId(), name: "book", status: "new", version: 1 })
        const failed = Order.make({
          id: uniqueOrderId(),
          name: "pen",
          status: "failed",
          version: 3,
          failure: { code: "out_of_ink", message: "out of ink" }
        })
        yield* readModel.save(created)
        yield* readModel.save(failed)
        expect(yield* readModel.get(created.id)).toEqual(Option.some(created))
        expect(yield* readModel.get(failed.id)).toEqual(Option.some(failed))
      }))

    it.effect("answers concurrent gets each with its own order, the same one twice, and nothing for unknown ones", () =>
      Effect.gen(function*() {
        const readModel = yield* OrderReadModel
        const orders = Array.from(
          { length: 20 },
          (_, i) => Order.make({ id: uniqueOrderId(), name: `order ${i}`, status: "new", version: i + 1 })
        )
        yield* Effect.forEach(orders, readModel.save, { discard: true })
        const asked = [...orders.map((order) => order.id), orders[0]!.id, uniqueOrderId()]
        const answers = yield* Effect.forEach(asked, readModel.get, { concurrency: "unbounded" })
        expect(answers).toEqual([...orders.map(Option.some), Option.some(orders[0]!), Option.none()])
      }))

    it.effect("never replaces a row with an older or equal version", () =>
      Effect.gen(function*() {
        const readModel = yield* OrderReadModel
        const id = uniqueOrderId()
        const processing = Order.make({ id, name: "book", status: "processing", version: 2 })
        yield* readModel.save(processing)
        yield* readModel.save(Order.make({ id, name: "book", status: "new", version: 1 }))
        yield* readModel.save(Order.make({ id, name: "other", status: "processed", version: 2 }))
        expect(yield* readModel.get(id)).toEqual(Option.some(processing))
        const processed = Order.make({ id, name: "book", status: "processed", version: 3 })
        yield* readModel.save(processed)
        expect(yield* readModel.get(id)).toEqual(Option.some(processed))
      }))

    it.effect("ends at each order's newest version, however concurrent saves of its versions interleave", () =>
      Effect.gen(function*() {
        const readModel = yield* OrderReadModel
        const ids = [uniqueOrderId(), uniqueOrderId(), uniqueOrderId()]
        const versions = [3, 1, 5, 2, 4]
        const saves = ids.flatMap((id) =>
          versions.map((version) => Order.make({ id, name: `v${version}`, status: "processing", version }))
        )
        yield* Effect.forEach(saves, readModel.save, { concurrency: "unbounded", discard: true })
        for (const id of ids) {
          expect(yield* readModel.get(id)).toEqual(
            Option.some(Order.make({ id, name: "v5", status: "processing", version: 5 }))
          )
        }
      }))

    it.effect("lists orders sorted by id, a page at a time", () =>
      Effect.gen(function*() {
        const readModel = yield* OrderReadModel
        const prefix = uniqueOrderId("list")
        const orders = ["c", "a", "b"].map((suffix) =>
          Order.make({ id: uniqueOrderId(`${prefix}-${suffix}`), name: suffix, status: "new", version: 1 })
        )
        yield* Effect.forEach(orders, readModel.save, { discard: true })
        const ours = (page: ReadonlyArray<Order>) =>
          page.filter((order) => order.id.startsWith(prefix)).map((o) => o.name)
        expect(ours(yield* readModel.list({ after: prefix, limit: 3 }))).toEqual(["a", "b", "c"])
        const [first] = yield* readModel.list({ after: prefix, limit: 1 })
        expect(first?.name).toBe("a")
        expect(ours(yield* readModel.list({ after: first!.id, limit: 2 }))).toEqual(["b", "c"])
      }))
  })
