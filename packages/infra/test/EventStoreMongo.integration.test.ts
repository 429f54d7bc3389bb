import { describe, expect, it, layer } from "@effect/vitest"
import { EventStore } from "@orders/domain/EventStore"
import { DateTime, Duration, Effect, Either, Exit, Layer } from "effect"
import { eventStoreContract } from "../../domain/test/contract/EventStoreContract.js"
import { lifecycle, uniqueOrderId } from "../../domain/test/fixtures.js"
import * as EventStoreMongo from "../src/EventStoreMongo.js"
import { tcpProxy } from "./support/network.js"
import { freshMongoDatabase, mongoUri, withMongo } from "./support/stack.js"

const storeOnFreshDatabase = Layer.unwrapScoped(
  freshMongoDatabase.pipe(Effect.map((database) => EventStoreMongo.layer({ uri: mongoUri, database })))
)

eventStoreContract("MongoDB", storeOnFreshDatabase)

describe("EventStoreMongo", () => {
  it("takes the database from the connection string's path", () => {
    expect(EventStoreMongo.databaseFromUri("mongodb://127.0.0.1:27017/orders")).toBe("orders")
    expect(EventStoreMongo.databaseFromUri("mongodb://u:p@a:1,b:2/shop?replicaSet=rs0")).toBe("shop")
    expect(EventStoreMongo.databaseFromUri("mongodb+srv://cluster.example.com/?retryWrites=true")).toBeUndefined()
    expect(EventStoreMongo.databaseFromUri("mongodb://127.0.0.1:27017")).toBeUndefined()
  })

  it.scoped("creates its indexes at start-up, and starts again over them", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      yield* EventStoreMongo.make({ uri: mongoUri, database })
      yield* EventStoreMongo.make({ uri: mongoUri, database })
      const indexesOf = (name: string) => withMongo((client) => client.db(database).collection(name).indexes())
      expect(yield* indexesOf(EventStoreMongo.COMMITS)).toContainEqual(
        expect.objectContaining({ key: { streamId: 1, version: 1 }, unique: true })
      )
      expect(yield* indexesOf(EventStoreMongo.OUTBOX)).toContainEqual(
        expect.objectContaining({ key: { streamId: 1, version: 1 } })
      )
    }))

  it.scoped("sees what another process appended, whatever this one remembers", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const api = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const processor = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const [created, requested, processed] = lifecycle(uniqueOrderId())
      const orderId = created!.streamId
      yield* api.append(orderId, 0, [created!])
      expect((yield* processor.read(orderId)).map((event) => event.version)).toEqual([1])
      yield* processor.append(orderId, 1, [requested!])
      expect((yield* api.read(orderId)).map((event) => event.version)).toEqual([1, 2])
      const stale = yield* Effect.either(processor.append(orderId, 1, [requested!]))
      expect(Either.isLeft(stale) && stale.left._tag).toBe("ConcurrencyConflict")
      yield* api.append(orderId, 2, [processed!])
      expect((yield* processor.read(orderId)).map((event) => event.version)).toEqual([1, 2, 3])
    }))

  it.scoped("clears the outbox marker of a writer that died before its commit, so the stream goes on", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const store = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const [created, requested] = lifecycle(uniqueOrderId(), 2)
      const orderId = created!.streamId
      yield* store.append(orderId, 0, [created!])
      yield* store.markPublished(orderId, 1)
      // A writer that inserted its marker at version 1 and died, two minutes ago.
      yield* withMongo((client) =>
        client.db(database).collection<EventStoreMongo.OutboxDocument>(EventStoreMongo.OUTBOX).insertOne({
          _id: `${orderId}:1`,
          streamId: orderId,
          previous: 1,
          version: 2,
          publishedVersion: 1,
          createdAt: new Date(Date.now() - 120_000)
        })
      )
      const blocked = yield* Effect.either(store.append(orderId, 1, [requested!]))
      expect(Either.isLeft(blocked) && blocked.left._tag).toBe("ConcurrencyConflict")
      expect(yield* store.unpublished(10)).toEqual([])
      yield* store.append(orderId, 1, [requested!])
      expect((yield* store.read(orderId)).map((event) => event.version)).toEqual([1, 2])
      expect((yield* store.unpublished(10)).map((event) => event.version)).toEqual([2])
    }))

  it.scoped("hands out at most `limit` unpublished events, in version order per stream", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const store = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const streams = [lifecycle(uniqueOrderId()), lifecycle(uniqueOrderId()), lifecycle(uniqueOrderId())]
      yield* Effect.forEach(streams, (events) =>
        store.append(events[0]!.streamId, 0, [events[0]!, events[1]!, events[2]!]))
      yield* store.markPublished(streams[0]![0]!.streamId, 2)

      const page = yield* store.unpublished(4)
      expect(page).toHaveLength(4)
      for (const events of streams) {
        const versions = page.filter((event) =>
          event.streamId === events[0]!.streamId
        ).map((event) => event.version)
        expect(versions).toEqual([...versions].sort())
      }
      expect(yield* store.unpublished(100)).toHaveLength(7)
      expect(yield* store.unpublished(0)).toEqual([])
    }))

  it.scoped("treats a stored event that does not decode as a defect naming the stream and version", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const store = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const orderId = uniqueOrderId()
      const [created, requested] = lifecycle(orderId, 2)
      yield* store.append(orderId, 0, [created!, requested!])
      yield* withMongo((client) =>
        client.db(database).collection<EventStoreMongo.CommitDocument>(EventStoreMongo.COMMITS).updateOne(
          { _id: `${orderId}:0` },
          { $set: { "events.1.type": "OrderShipped" } }
        )
      )
      // Another process, which has not read the commit before it went bad.
      const reader = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const exit = yield* Effect.exit(reader.read(orderId))
      expect(Exit.isFailure(exit) && !Exit.isInterrupted(exit)).toBe(true)
      const defect = Exit.isFailure(exit) ? String(exit.cause) : ""
      expect(defect).toContain(`stream '${orderId}' version 2`)
    }))

  it.scopedLive(
    "fails with ServiceUnavailable within seconds while the server is gone, and recovers",
    () =>
      Effect.gen(function*() {
        const database = yield* freshMongoDatabase
        const proxy = yield* tcpProxy(new URL(mongoUri), 27017)
        // directConnection: a replica set would otherwise hand the driver its members' real addresses.
        const store = yield* EventStoreMongo.make({
          uri: `mongodb://127.0.0.1:${proxy.port}/?directConnection=true`,
          database
        })
        const [created, requested] = lifecycle(uniqueOrderId(), 2)
        yield* store.append(created!.streamId, 0, [created!])

        yield* Effect.promise(() => proxy.stop())
        const [elapsed, results] = yield* Effect.all([
          Effect.either(store.read(created!.streamId)),
          Effect.either(store.append(created!.streamId, 1, [requested!]))
        ]).pipe(Effect.timed)
        for (const result of results) {
          expect(Either.isLeft(result) && result.left).toMatchObject({ _tag: "ServiceUnavailable", service: "MongoDB" })
        }
        expect(Duration.toMillis(elapsed)).toBeLessThan(15_000)

        yield* Effect.promise(() => proxy.start())
        yield* store.append(created!.streamId, 1, [requested!]).pipe(
          Effect.retry({ while: (error) => error._tag === "ServiceUnavailable", times: 20 })
        )
        expect((yield* store.read(created!.streamId)).map((event) => event.version)).toEqual([1, 2])
      }),
    { timeout: 60_000 }
  )

  it.scoped("stores envelopes as plain JSON, occurredAt an ISO-8601 string", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const store = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const [created] = lifecycle(uniqueOrderId(), 1)
      yield* store.append(created!.streamId, 0, [created!])
      const stored = yield* withMongo((client) =>
        client.db(database).collection<EventStoreMongo.CommitDocument>(EventStoreMongo.COMMITS).findOne({
          streamId: created!.streamId
        })
      )
      expect(stored).toMatchObject({
        _id: `${created!.streamId}:0`,
        previous: 0,
        version: 1,
        events: [{ version: 1, type: "OrderCreated", occurredAt: DateTime.formatIso(created!.occurredAt) }]
      })
    }))
})

layer(storeOnFreshDatabase)("EventStoreMongo under concurrent appends", (it) => {
  // One race, as in the contract, can pass by luck on a server whose conditional writes are not atomic.
  it.effect("lets exactly one writer win every one of many races", () =>
    Effect.gen(function*() {
      const store = yield* EventStore
      const winners = yield* Effect.forEach(
        Array.from({ length: 20 }, () => lifecycle(uniqueOrderId(), 2)),
        ([created, requested]) =>
          Effect.gen(function*() {
            yield* store.append(created!.streamId, 0, [created!])
            const results = yield* Effect.forEach(
              Array.from({ length: 8 }, () => requested!),
              (event) => Effect.either(store.append(event.streamId, 1, [event])),
              { concurrency: "unbounded" }
            )
            expect((yield* store.read(created!.streamId)).map((event) => event.version)).toEqual([1, 2])
            return results.filter(Either.isRight).length
          })
      )
      expect(winners).toEqual(winners.map(() => 1))
    }))

  it.effect("keeps every stream gap-free", () =>
    Effect.gen(function*() {
      const store = yield* EventStore
      const orders = Array.from({ length: 20 }, () => lifecycle(uniqueOrderId()))
      yield* Effect.forEach(orders, (events) =>
        Effect.forEach(events, (event) =>
          store.append(event.streamId, event.version - 1, [event]), { discard: true }), {
        concurrency: "unbounded",
        discard: true
      })
      const read = yield* Effect.forEach(orders, (events) =>
        store.read(events[0]!.streamId), { concurrency: 5 })
      expect(read.map((events) =>
        events.map((event) => event.version)
      )).toEqual(orders.map(() => [1, 2, 3]))
    }))
})
