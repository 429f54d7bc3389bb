import { describe, expect, it, layer } from "@effect/vitest"
import { EventStore } from "@orders/domain/EventStore"
import type { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { encodeEvent } from "@orders/domain/OrderEvent"
import { eventStoreContract } from "@orders/domain/testing/contract/EventStoreContract"
import { appended, envelope, lifecycle, uniqueOrderId } from "@orders/domain/testing/fixtures"
import {
  ConfigProvider,
  Context,
  DateTime,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Metric,
  Option,
  TestClock
} from "effect"
import type { Server, Socket } from "node:net"
import { connect, createServer } from "node:net"
import * as EventStoreMongo from "../src/EventStoreMongo.js"
import { tcpProxy } from "./support/network.js"
import { freshMongoDatabase, mongoUri, mongoUriFor, withMongo } from "./support/stack.js"

const storeOnFreshDatabase = Layer.unwrapScoped(
  freshMongoDatabase.pipe(Effect.map((database) => EventStoreMongo.layer({ uri: mongoUri, database })))
)

eventStoreContract("MongoDB", storeOnFreshDatabase)

/** Past the default grace: what the store held back is due. */
const pastGrace = TestClock.adjust(Duration.minutes(1))

const outboxOf = (database: string) =>
  withMongo((client) =>
    client.db(database).collection<EventStoreMongo.OutboxDocument>(EventStoreMongo.OUTBOX).find().toArray()
  )

/** The outbox entry a writer leaves when it dies (or stalls) before inserting its commit. */
const insertMarker = (database: string, streamId: string, previous: number) =>
  withMongo((client) =>
    client.db(database).collection<EventStoreMongo.OutboxDocument>(EventStoreMongo.OUTBOX).insertOne({
      _id: `${streamId}:${previous}`,
      streamId,
      previous,
      due: new Date(0),
      misses: 0,
      owner: "a writer that stopped",
      createdAt: new Date(0)
    })
  )

/** A commit inserted behind the store's back: another process's, or a stalled writer's landing late. */
const insertCommit = (database: string, events: ReadonlyArray<OrderEventEnvelope>) =>
  withMongo((client) =>
    client.db(database).collection<EventStoreMongo.CommitDocument>(EventStoreMongo.COMMITS).insertOne({
      _id: `${events[0]!.streamId}:${events[0]!.version - 1}`,
      streamId: events[0]!.streamId,
      previous: events[0]!.version - 1,
      version: events.at(-1)!.version,
      events: events.map(encodeEvent)
    })
  )

/** Splits a byte stream into wire-protocol messages, each of which starts with its length. */
const messages = (onMessage: (message: Buffer) => void) => {
  let pending = Buffer.alloc(0)
  return (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk])
    while (pending.length >= 4 && pending.length >= pending.readInt32LE(0)) {
      onMessage(pending.subarray(0, pending.readInt32LE(0)))
      pending = pending.subarray(pending.readInt32LE(0))
    }
  }
}

/** The BSON element `insert: "commits"` that opens the command inserting a commit. */
const commitInsert = Buffer.concat([
  Buffer.from("\x02insert\x00", "latin1"),
  Buffer.from([8, 0, 0, 0]),
  Buffer.from("commits\x00", "latin1")
])

/**
 * A TCP relay to the server that spoils the first insert of a commit: it
 * forwards the insert and drops the server's answer (`lose: "answer"`), or
 * drops the insert itself after running `meanwhile` (`lose: "request"`). Then
 * it cuts every connection, and with `thenDown` refuses new ones until `restore`.
 */
const faultyLink = (fault: {
  readonly lose: "answer" | "request"
  readonly meanwhile?: () => Promise<unknown>
  readonly thenDown?: boolean
}) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const target = new URL(mongoUri)
      const sockets = new Set<Socket>()
      let server: Server | undefined
      let port = 0
      let tripped = false
      const close = () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy()
          sockets.clear()
          if (server === undefined) resolve()
          else server.close(() => resolve())
        })
      const trip = () => {
        tripped = true
        if (fault.thenDown) void close()
        else for (const socket of sockets) socket.destroy()
      }
      const listen = () =>
        new Promise<void>((resolve, reject) => {
          server = createServer((client) => {
            const upstream = connect(Number(target.port || 27017), target.hostname)
            let lostAnswerTo: number | undefined
            for (const socket of [client, upstream]) {
              sockets.add(socket)
              socket.on("error", () => socket.destroy()).on("close", () => {
                client.destroy()
                upstream.destroy()
              })
            }
            client.on(
              "data",
              messages((message) => {
                if (tripped || !message.includes(commitInsert)) return upstream.write(message)
                if (fault.lose === "answer") {
                  lostAnswerTo = message.readInt32LE(4)
                  return upstream.write(message)
                }
                void (fault.meanwhile ?? (() => Promise.resolve()))().then(trip)
              })
            )
            upstream.on(
              "data",
              messages((message) => message.readInt32LE(8) === lostAnswerTo ? trip() : client.write(message))
            )
          })
          server.once("error", reject).listen(port, "127.0.0.1", () => {
            const address = server!.address()
            if (typeof address === "object" && address !== null) port = address.port
            resolve()
          })
        })
      await listen()
      return {
        uri: `mongodb://127.0.0.1:${port}/?directConnection=true`,
        tripped: () => tripped,
        restore: listen,
        close
      }
    }),
    (link) => Effect.promise(link.close)
  )

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
      const outboxIndexes = yield* indexesOf(EventStoreMongo.OUTBOX)
      expect(outboxIndexes).toContainEqual(expect.objectContaining({ key: { due: 1, _id: 1 } }))
      expect(outboxIndexes).toContainEqual(expect.objectContaining({ key: { streamId: 1, previous: 1 } }))
    }))

  it.scoped("takes the grace from OUTBOX_RELAY_GRACE", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const config = ConfigProvider.fromMap(
        new Map([["MONGODB_URI", mongoUriFor(database)], ["OUTBOX_RELAY_GRACE", "1 hour"]])
      )
      const store = Context.get(
        yield* Layer.build(EventStoreMongo.layerConfig).pipe(Effect.withConfigProvider(config)),
        EventStore
      )
      const [created] = lifecycle(uniqueOrderId(), 1)
      yield* store.append(created!.streamId, 0, [created!])
      yield* TestClock.adjust(Duration.minutes(59))
      expect(yield* store.unpublished(10)).toEqual([])
      yield* TestClock.adjust(Duration.minutes(1))
      expect(yield* store.unpublished(10)).toEqual([created])
    }))

  it.scoped("asks the server for another process's events only as far as the version a consumer was delivered", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const api = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const [created, requested, processed] = lifecycle(uniqueOrderId())
      const orderId = created!.streamId
      yield* api.append(orderId, 0, [created!])
      yield* api.append(orderId, 1, [requested!])
      yield* api.append(orderId, 2, [processed!])
      const versionsKnownThrough = (through: number) =>
        Effect.flatMap(
          EventStoreMongo.make({ uri: mongoUri, database }),
          (consumer) =>
            Effect.map(consumer.readKnown(orderId, through), (events) => events.map((event) => event.version))
        )
      expect(yield* versionsKnownThrough(0)).toEqual([])
      expect(yield* versionsKnownThrough(2)).toEqual([1, 2])
      expect(yield* versionsKnownThrough(5)).toEqual([1, 2, 3])
    }))

  it.scoped("decides on the appends a consumer was delivered without asking the server, and on a part of one never", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const api = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const processor = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const [created, requested] = lifecycle(uniqueOrderId(), 2)
      const orderId = created!.streamId
      const first = appended([created!])
      const second = appended([requested!])
      yield* api.append(orderId, 0, first)
      yield* api.append(orderId, 1, second)
      yield* processor.learn([...first, ...second])
      // Gone from the server: what the processor knows now comes from what it was delivered.
      yield* withMongo((client) => client.db(database).collection(EventStoreMongo.COMMITS).deleteMany({}))
      expect(yield* processor.readKnown(orderId, 2)).toEqual([...first, ...second])

      const other = uniqueOrderId()
      const [otherCreated, otherRequested, otherProcessed] = lifecycle(other)
      // Three events, so that a decision on the first alone would end on a version no commit has.
      const whole = appended([otherRequested!, otherProcessed!, envelope(4, otherProcessed!.data)])
      yield* api.append(other, 0, appended([otherCreated!]))
      yield* api.append(other, 1, whole)
      yield* processor.learn([whole[0]])
      const onPart = yield* Effect.either(processor.append(other, 2, appended([envelope(3, otherProcessed!.data)])))
      expect(Either.isLeft(onPart) && onPart.left._tag).toBe("ConcurrencyConflict")
      expect((yield* api.read(other)).map((event) => event.version)).toEqual([1, 2, 3, 4])
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

  it.scopedLive("starts several stores at once on a fresh database, as programs starting together do", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const stores = yield* Effect.all(
        Array.from({ length: 4 }, () => EventStoreMongo.make({ uri: mongoUri, database })),
        { concurrency: "unbounded" }
      )
      const [created] = lifecycle(uniqueOrderId(), 1)
      yield* stores[0]!.append(created!.streamId, 0, [created!])
      expect(yield* stores[3]!.read(created!.streamId)).toEqual([created])
    }))

  it.scoped("knows without asking only what this process wrote or read; a decision on a stale prefix cannot append", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const api = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const processor = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const [created, requested, processed] = lifecycle(uniqueOrderId())
      const orderId = created!.streamId
      yield* api.append(orderId, 0, [created!])
      expect(yield* processor.readKnown(orderId)).toEqual([])
      expect(yield* api.readKnown(orderId)).toEqual([created])
      yield* processor.append(orderId, 1, [requested!]).pipe(Effect.zipLeft(processor.read(orderId)), Effect.orDie)
      // The api's prefix is now stale: an append decided on it is refused, and a fresh read catches up.
      const stale = yield* Effect.either(api.append(orderId, 1, [envelope(2, processed!.data)]))
      expect(Either.isLeft(stale) && stale.left._tag).toBe("ConcurrencyConflict")
      expect(yield* api.read(orderId)).toEqual([created, requested])
      expect(yield* api.readKnown(orderId)).toEqual([created, requested])
    }))

  it("takes how many commits it remembers from EVENT_STORE_KNOWN_COMMITS, and refuses a negative count", () => {
    const read = (value: string) =>
      Effect.runSync(Effect.either(
        EventStoreMongo.optionsConfig.pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["EVENT_STORE_KNOWN_COMMITS", value]])))
        )
      ))
    expect(Either.map(read("2"), (options) => options.knownCommits)).toEqual(Either.right(2))
    expect(Either.isLeft(read("-1"))).toBe(true)
  })

  it.scoped("remembers the commits it used last, forgets the others first, and says how many it keeps", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const store = yield* EventStoreMongo.make({ uri: mongoUri, database, knownCommits: 2 })
      const [first, second, third] = [uniqueOrderId(), uniqueOrderId(), uniqueOrderId()]
      const [created] = lifecycle(first)
      const knownGauge = Metric.value(EventStoreMongo.knownCommitsGauge).pipe(Effect.map((state) => state.value))
      yield* store.append(first, 0, [created!])
      expect(yield* knownGauge).toBe(1)
      yield* store.append(second, 0, [lifecycle(second)[0]!])
      expect(yield* store.readKnown(first)).toEqual([created])
      yield* store.append(third, 0, [lifecycle(third)[0]!])
      expect(yield* knownGauge).toBe(2)
      // Gone from the server: only what the store remembers answers now.
      yield* withMongo((client) => client.db(database).collection(EventStoreMongo.COMMITS).deleteMany({}))
      expect(yield* store.readKnown(first)).toEqual([created])
      expect(yield* store.readKnown(second)).toEqual([])
    }))

  it.scoped("goes on over the marker of a writer that died before its commit; the marker covers the commit that lands", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const store = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const [created, requested] = lifecycle(uniqueOrderId(), 2)
      const orderId = created!.streamId
      yield* store.append(orderId, 0, [created!])
      yield* store.markPublished([created!])
      yield* insertMarker(database, orderId, 1)
      yield* store.append(orderId, 1, [requested!])
      // The dead writer's process comes back and tries its own commit: it lost, and deletes nothing.
      const late = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const lost = yield* Effect.either(late.append(orderId, 1, [envelope(2, requested!.data)]))
      expect(Either.isLeft(lost) && lost.left._tag).toBe("ConcurrencyConflict")
      expect((yield* store.read(orderId)).map((event) => event.version)).toEqual([1, 2])
      yield* pastGrace
      expect(yield* store.unpublished(10)).toEqual([requested])
      yield* store.markPublished([requested!])
      expect(yield* outboxOf(database)).toEqual([])
    }))

  it.scoped("publishes a stalled writer's commit however late it lands: clocks only say when to look", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const store = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const [created] = lifecycle(uniqueOrderId(), 1)
      yield* insertMarker(database, created!.streamId, 0)
      for (let hour = 0; hour < 5; hour++) {
        yield* TestClock.adjust(Duration.hours(1))
        expect(yield* store.unpublished(10)).toEqual([])
      }
      yield* insertCommit(database, [created!])
      yield* TestClock.adjust(Duration.hours(1))
      expect(yield* store.unpublished(10)).toEqual([created])
    }))

  it.scoped("puts off a marker without its commit, longer each time, so that orphans never fill a batch", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const store = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const orphans = [uniqueOrderId(), uniqueOrderId(), uniqueOrderId()]
      yield* Effect.forEach(orphans, (orderId) => insertMarker(database, orderId, 0), { discard: true })
      const [created] = lifecycle(uniqueOrderId(), 1)
      yield* store.append(created!.streamId, 0, [created!])
      yield* pastGrace
      expect(yield* store.unpublished(2)).toEqual([])
      expect(yield* store.unpublished(2)).toEqual([created])
      const dueOf = (misses: number) =>
        outboxOf(database).pipe(
          Effect.map((markers) =>
            markers.filter((marker) => marker.misses === misses).map((marker) => marker.due.getTime()).sort()
          )
        )
      // Seen at 1 minute: due a minute later.
      expect(yield* dueOf(1)).toEqual([120_000, 120_000, 120_000])
      yield* TestClock.adjust(Duration.minutes(1))
      expect(yield* store.unpublished(10)).toEqual([created])
      expect(yield* dueOf(2)).toEqual([240_000, 240_000, 240_000])
      const backlog = yield* store.backlog()
      expect(backlog).toEqual({ entries: 4, oldest: Option.some(Duration.minutes(2)), orphans: 3 })
      yield* store.markPublished([created!])
      expect((yield* store.backlog()).entries).toBe(3)
    }))

  it.scoped("does not let a commit overtake an earlier one of its order whose writer's clock ran ahead", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const store = yield* EventStoreMongo.make({ uri: mongoUri, database })
      const [created, requested] = lifecycle(uniqueOrderId(), 2)
      const orderId = created!.streamId
      yield* store.append(orderId, 0, [created!])
      yield* store.append(orderId, 1, [requested!])
      // The first writer's clock was ten minutes ahead.
      yield* withMongo((client) =>
        client.db(database).collection<EventStoreMongo.OutboxDocument>(EventStoreMongo.OUTBOX).updateOne(
          { _id: `${orderId}:0` },
          { $set: { due: new Date(600_000) } }
        )
      )
      yield* pastGrace
      expect(yield* store.unpublished(10)).toEqual([])
      yield* TestClock.adjust(Duration.minutes(10))
      // The later commit now waits behind the earlier one, even in batches of one.
      expect(yield* store.unpublished(1)).toEqual([created])
      expect(yield* store.unpublished(10)).toEqual([created, requested])
    }))

  it.scoped("relays the markers of earlier versions, which have no due time", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const [created] = lifecycle(uniqueOrderId(), 1)
      yield* insertCommit(database, [created!])
      yield* withMongo((client) =>
        client.db(database).collection<
          Omit<EventStoreMongo.OutboxDocument, "due" | "misses" | "owner"> & {
            version: number
            publishedVersion: number
          }
        >(EventStoreMongo.OUTBOX).insertOne({
          _id: `${created!.streamId}:0`,
          streamId: created!.streamId,
          previous: 0,
          version: 1,
          publishedVersion: 0,
          createdAt: new Date(0)
        })
      )
      const store = yield* EventStoreMongo.make({ uri: mongoUri, database })
      expect(yield* store.unpublished(10)).toEqual([created])
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
    "fails with ServiceUnavailable within seconds while the server is gone, having written nothing, and recovers",
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

  it.scopedLive("succeeds when the commit's answer is lost but the commit landed", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const link = yield* faultyLink({ lose: "answer" })
      const store = yield* EventStoreMongo.make({ uri: link.uri, database, grace: Duration.zero })
      const [created] = lifecycle(uniqueOrderId(), 1)
      yield* store.append(created!.streamId, 0, [created!])
      expect(link.tripped()).toBe(true)
      expect(yield* store.read(created!.streamId)).toEqual([created])
      expect(yield* store.unpublished(10)).toEqual([created])
    }), { timeout: 60_000 })

  it.scopedLive(
    "settles each append of a batch whose request was lost: none is reported written unless it is",
    () =>
      Effect.gen(function*() {
        const database = yield* freshMongoDatabase
        const link = yield* faultyLink({ lose: "request" })
        const store = yield* EventStoreMongo.make({ uri: link.uri, database, grace: Duration.zero })
        const created = Array.from({ length: 16 }, () => lifecycle(uniqueOrderId(), 1)[0]!)
        // Concurrent appends share their inserts' round trips. The lost request, and the connections dropped with
        // it, leave commits to be settled one by one, and markers whose appends wrote nothing.
        const results = yield* Effect.forEach(
          created,
          (event) => Effect.either(store.append(event.streamId, 0, [event])),
          { concurrency: "unbounded" }
        )
        expect(link.tripped()).toBe(true)
        const direct = yield* EventStoreMongo.make({ uri: mongoUri, database, grace: Duration.zero })
        const written: Array<OrderEventEnvelope> = []
        for (const [i, result] of results.entries()) {
          const stored = yield* direct.read(created[i]!.streamId)
          if (Either.isRight(result)) {
            expect(stored).toEqual([created[i]])
            written.push(created[i]!)
          } else {
            expect(result.left._tag).toBe("ServiceUnavailable")
            expect(stored).toEqual([])
          }
        }
        expect(written.length).toBeGreaterThan(0)
        expect(new Set(yield* direct.unpublished(100))).toEqual(new Set(written))
      }),
    { timeout: 60_000 }
  )

  it.scopedLive(
    "answers ConcurrencyConflict when the commit's request is lost and another writer's commit landed",
    () =>
      Effect.gen(function*() {
        const database = yield* freshMongoDatabase
        const [created] = lifecycle(uniqueOrderId(), 1)
        const rival = envelope(1, created!.data)
        const link = yield* faultyLink({
          lose: "request",
          meanwhile: () => Effect.runPromise(insertCommit(database, [rival]))
        })
        const store = yield* EventStoreMongo.make({ uri: link.uri, database, grace: Duration.zero })
        const result = yield* Effect.either(store.append(created!.streamId, 0, [created!]))
        expect(link.tripped()).toBe(true)
        expect(Either.isLeft(result) && result.left._tag).toBe("ConcurrencyConflict")
        expect(yield* store.read(created!.streamId)).toEqual([rival])
        // Our marker covers the rival's commit, which its writer may not have marked.
        expect(yield* store.unpublished(10)).toEqual([rival])
      }),
    { timeout: 60_000 }
  )

  it.scopedLive(
    "answers AppendOutcomeUnknown when no answer comes at all; a commit that landed is in the outbox",
    () =>
      Effect.gen(function*() {
        const database = yield* freshMongoDatabase
        const link = yield* faultyLink({ lose: "answer", thenDown: true })
        const store = yield* EventStoreMongo.make({ uri: link.uri, database })
        const [created] = lifecycle(uniqueOrderId(), 1)
        const result = yield* Effect.either(store.append(created!.streamId, 0, [created!]))
        expect(link.tripped()).toBe(true)
        expect(Either.isLeft(result) && result.left._tag).toBe("AppendOutcomeUnknown")
        const direct = yield* EventStoreMongo.make({ uri: mongoUri, database, grace: Duration.zero })
        expect(yield* direct.read(created!.streamId)).toEqual([created])
        expect(yield* direct.unpublished(10)).toEqual([created])
      }),
    { timeout: 60_000 }
  )

  it.scopedLive(
    "finishes an append it has started, whenever it is interrupted: no marker without its commit, no commit unmarked",
    () =>
      Effect.gen(function*() {
        const database = yield* freshMongoDatabase
        const store = yield* EventStoreMongo.make({ uri: mongoUri, database })
        // How long an append takes here, to interrupt appends anywhere in it.
        const [first] = lifecycle(uniqueOrderId(), 1)
        const [took] = yield* Effect.timed(store.append(first!.streamId, 0, [first!]))
        const span = Math.max(2, Math.ceil(Duration.toMillis(took) * 1.5))
        const orders = Array.from({ length: 40 }, () => lifecycle(uniqueOrderId(), 2))
        for (const [i, [created]] of orders.entries()) {
          const append = yield* Effect.fork(store.append(created!.streamId, 0, [created!]))
          yield* Effect.sleep(Duration.millis(i % span))
          yield* Fiber.interrupt(append)
        }
        const idsIn = (collection: string) =>
          withMongo((client) =>
            client.db(database).collection<{ _id: string }>(collection).find({}, { projection: { _id: 1 } }).toArray()
          ).pipe(Effect.map((documents) => documents.map((document) => document._id).sort()))
        expect(yield* idsIn(EventStoreMongo.OUTBOX)).toEqual(yield* idsIn(EventStoreMongo.COMMITS))
        for (const [created, requested] of orders) {
          if ((yield* store.read(created!.streamId)).length === 0) yield* store.append(created!.streamId, 0, [created!])
          yield* store.append(created!.streamId, 1, [requested!])
        }
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
