import { describe, expect, it } from "@effect/vitest"
import { projectAll } from "@orders/domain/Projection"
import { Chunk, DateTime, Duration, Effect, Fiber, TestClock, TestServices } from "effect"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import * as ConsistencyCheck from "../src/ConsistencyCheck.js"
import type { OutboxDocument } from "../src/EventStoreMongo.js"
import { COMMITS, OUTBOX } from "../src/EventStoreMongo.js"
import { produceRaw, withAdmin } from "./support/kafka.js"
import type { OperatorStack } from "./support/operator.js"
import { freshOperatorStack } from "./support/operator.js"
import { commitOf, seededEvents } from "./support/seedEventStore.js"
import { databaseUrl, kafkaBrokers, schemaUrl, withMongo } from "./support/stack.js"

/** A group of its own: on a shared broker, another run's group could be active, and its offsets not ours to move. */
const GROUP = `orders.projector.test-${crypto.randomUUID()}`

const checkOn = (stack: OperatorStack, options: Partial<ConsistencyCheck.CheckOptions> = {}) =>
  ConsistencyCheck.check({ topic: stack.topic, groups: [GROUP], settle: "200 millis", ...options }).pipe(
    Effect.provide(stack.context)
  )

/** Orders of every kind of life, their commits in the store and their rows in the read model. */
const consistentStack = (orders: number) =>
  Effect.gen(function*() {
    const stack = yield* freshOperatorStack
    const seeded = yield* stack.seed({ orders, prefix: "o" })
    yield* stack.project(seeded.orders)
    return { stack, seeded }
  })

const insertDocuments = (stack: OperatorStack, collection: string, documents: ReadonlyArray<object>) =>
  withMongo((client) => client.db(stack.database).collection(collection).insertMany(documents.map((d) => ({ ...d }))))

const createTopic = (topic: string) =>
  withAdmin((admin) => admin.createTopics({ topics: [topic], partitions: 1, replicas: 1 }))

/** `records` messages on a topic of one partition, and the group committed at `offset` (deleted with the scope). */
const topicWithLag = (stack: OperatorStack, records: number, offset: number) =>
  Effect.gen(function*() {
    yield* createTopic(stack.topic)
    yield* Effect.addFinalizer(() =>
      withAdmin((admin) => admin.deleteGroups({ groups: [GROUP] })).pipe(Effect.catchAllCause(() => Effect.void))
    )
    yield* produceRaw(stack.topic, Array.from({ length: records }, (_, i) => ({ key: `k${i}`, value: "{}" })))
    yield* commitGroupAt(stack, BigInt(offset))
  })

const commitGroupAt = (stack: OperatorStack, offset: bigint) =>
  withAdmin((admin) =>
    admin.alterConsumerGroupOffsets({
      groupId: GROUP,
      topics: [{ name: stack.topic, partitionOffsets: [{ partition: 0, offset }] }]
    })
  )

/** Waits, in real time, until the check sleeps for its settle time on the TestClock: its first look is done. */
const firstLookDone = (settle: Duration.Duration) =>
  TestClock.sleeps().pipe(
    Effect.tap(() => TestServices.provideLive(Effect.sleep("20 millis"))),
    Effect.repeat({ until: Chunk.some((wakeAt) => wakeAt === Duration.toMillis(settle)), times: 3_000 })
  )

describe("ConsistencyCheck", () => {
  it.scopedLive("finds nothing when the read model is the fold of every stream", () =>
    Effect.gen(function*() {
      const { seeded, stack } = yield* consistentStack(40)
      const report = yield* checkOn(stack)
      expect(report).toMatchObject({
        eventStore: { streams: 40, events: seeded.events },
        readModel: { exists: true, rows: 40 },
        outbox: { entries: 0, orphans: [], unpublished: [] },
        deadLetters: { messages: 0 },
        orders: [],
        chains: [],
        stuck: [],
        problems: 0,
        warnings: 0
      })
      expect(ConsistencyCheck.exitCode(report)).toBe(0)
      expect(ConsistencyCheck.render(report)).toContain("consistent")
    }), { timeout: 60_000 })

  it.scopedLive(
    "finds a wrong status, a wrong version, a missing row and an extra row that persist",
    () =>
      Effect.gen(function*() {
        const { stack } = yield* consistentStack(8)
        // o-2: processed at v3; o-1: processing at v2; o-0: new at v1.
        yield* stack.sql`UPDATE orders SET status = 'processing' WHERE id = 'o-2'`
        yield* stack.sql`UPDATE orders SET version = 7 WHERE id = 'o-3'`
        yield* stack.sql`DELETE FROM orders WHERE id = 'o-4'`
        yield* stack.sql`INSERT INTO orders (id, name, status, version) VALUES ('ghost', 'nobody', 'new', 1)`
        // Right at v1, but the store holds v2: behind, and for longer than the settle time.
        yield* stack.sql`UPDATE orders SET status = 'new', version = 1 WHERE id = 'o-5'`

        const report = yield* checkOn(stack)
        const byOrder = Object.fromEntries(report.orders.map((found) => [found.orderId, found]))
        expect(byOrder).toEqual({
          "o-2": {
            orderId: "o-2",
            kind: "differs",
            storeVersion: 3,
            store: { version: 3, status: "processed", name: "order o-2", failure: null },
            readModel: { version: 3, status: "processing", name: "order o-2", failure: null }
          },
          "o-3": expect.objectContaining({
            kind: "differs",
            storeVersion: 3,
            readModel: expect.objectContaining({ version: 7 })
          }),
          "o-4": expect.objectContaining({ kind: "missing", storeVersion: 1, readModel: null }),
          "ghost": expect.objectContaining({ kind: "extra", storeVersion: 0, store: null }),
          "o-5": expect.objectContaining({
            kind: "behind",
            storeVersion: 2,
            readModel: expect.objectContaining({ version: 1 })
          })
        })
        expect(report.problems).toBe(5)
        expect(ConsistencyCheck.exitCode(report)).toBe(1)
        const printed = ConsistencyCheck.render(report)
        expect(printed).toContain("NOT consistent: 5 problems")
        expect(printed).toMatch(/o-2\s+differs\s+v3 processed "order o-2"\s+v3 processing "order o-2"/)
      }),
    { timeout: 60_000 }
  )

  it.scoped(
    "does not report a row behind and a consumer lag that catch up within the settle time",
    () =>
      Effect.gen(function*() {
        const { seeded, stack } = yield* consistentStack(4)
        yield* stack.sql`UPDATE orders SET status = 'new', version = 1 WHERE id = 'o-1'`
        yield* topicWithLag(stack, 3, 0)
        const settle = Duration.seconds(7)
        const checking = yield* Effect.fork(checkOn(stack, { settle }))
        yield* firstLookDone(settle)
        // The projector catches up meanwhile.
        yield* stack.project(seeded.orders.filter((order) => order.id === "o-1"))
        yield* commitGroupAt(stack, 3n)
        yield* TestClock.adjust(settle)
        const report = yield* Fiber.join(checking)
        expect(report.orders).toEqual([])
        expect(report.lag).toEqual([{ group: GROUP, partition: 0, committed: 3, end: 3, lag: 0, behind: false }])
        expect(report.problems).toBe(0)
      }),
    { timeout: 60_000 }
  )

  it.scoped(
    "reports a row behind and a consumer lag that have not caught up after the settle time",
    () =>
      Effect.gen(function*() {
        const { stack } = yield* consistentStack(4)
        yield* stack.sql`UPDATE orders SET status = 'new', version = 1 WHERE id = 'o-1'`
        yield* topicWithLag(stack, 3, 1)
        const settle = Duration.seconds(7)
        const checking = yield* Effect.fork(checkOn(stack, { settle }))
        yield* firstLookDone(settle)
        yield* TestClock.adjust(settle)
        const report = yield* Fiber.join(checking)
        expect(report.orders).toEqual([expect.objectContaining({ orderId: "o-1", kind: "behind" })])
        expect(report.lag).toEqual([{ group: GROUP, partition: 0, committed: 1, end: 3, lag: 2, behind: true }])
        expect(report.problems).toBe(2)
        expect(ConsistencyCheck.render(report)).toMatch(new RegExp(`${GROUP}\\s+0\\s+1\\s+3\\s+2\\s+yes`))
      }),
    { timeout: 60_000 }
  )

  it.scopedLive(
    "reports a gap and a fork in commit chains, an order stuck in processing, an old unpublished append and dead letters",
    () =>
      Effect.gen(function*() {
        const { stack } = yield* consistentStack(4)
        const now = yield* DateTime.now
        const hoursAgo = DateTime.subtract(now, { hours: 2 })
        // gap-0 holds 1..2 and a commit for 4..; fork-0 holds 1, 2..3, and a commit claiming 3 again.
        const gap = seededEvents("gap", 2, now)
        const fork = seededEvents("fork", 2, now)
        const forkAgain = seededEvents("fork", 2, now)
        const stuck = seededEvents("stuck", 1, hoursAgo)
        yield* insertDocuments(stack, COMMITS, [
          commitOf(gap.slice(0, 2)),
          { ...commitOf([gap[2]!]), _id: "gap-2:3", previous: 3, version: 4 },
          commitOf(fork.slice(0, 1)),
          commitOf(fork.slice(1, 3)),
          commitOf(forkAgain.slice(2, 3)),
          ...stuck.map((event) => commitOf([event]))
        ])
        const unpublished: OutboxDocument = {
          _id: "o-0:0",
          streamId: "o-0",
          previous: 0,
          due: DateTime.toDate(hoursAgo),
          misses: 0,
          owner: "test",
          createdAt: DateTime.toDate(hoursAgo)
        }
        yield* insertDocuments(stack, OUTBOX, [unpublished])
        yield* createTopic(`${stack.topic}.dlq`)
        yield* produceRaw(`${stack.topic}.dlq`, [{ key: "o-1", value: "not an event" }])
        yield* stack.project([gap.slice(0, 2), fork, stuck].map((events) => projectAll(undefined, events)!))

        const report = yield* checkOn(stack)
        expect(report.chains).toEqual([
          {
            kind: "fork",
            streamId: "fork-2",
            commit: "fork-2:2",
            detail: "claims versions 3..3, the chain holds 1..3"
          },
          { kind: "gap", streamId: "gap-2", commit: "gap-2:3", detail: "versions 3..3 are in no reachable commit" }
        ])
        expect(report.stuck).toEqual([
          { orderId: "stuck-1", version: 2, processingForMillis: expect.any(Number) }
        ])
        expect(report.stuck[0]!.processingForMillis).toBeGreaterThanOrEqual(Duration.toMillis(Duration.hours(2)))
        expect(report.outbox.unpublished).toEqual([{ id: "o-0:0", streamId: "o-0", ageMillis: expect.any(Number) }])
        expect(report.deadLetters).toEqual({ topic: `${stack.topic}.dlq`, messages: 1 })
        expect(report.orders).toEqual([])
        expect(report.problems).toBe(5)
      }),
    { timeout: 60_000 }
  )

  it.scopedLive(
    "reports an orphaned outbox marker as a warning: nothing was lost, the check passes",
    () =>
      Effect.gen(function*() {
        const { stack } = yield* consistentStack(2)
        const now = DateTime.toDate(yield* DateTime.now)
        yield* insertDocuments(stack, OUTBOX, [{
          _id: "never-written:0",
          streamId: "never-written",
          previous: 0,
          due: now,
          misses: 1,
          owner: "test",
          createdAt: now
        }])
        const report = yield* checkOn(stack)
        expect(report.outbox).toMatchObject({
          entries: 1,
          orphans: [{ id: "never-written:0", streamId: "never-written" }],
          unpublished: []
        })
        expect(report).toMatchObject({ problems: 0, warnings: 1 })
        expect(ConsistencyCheck.render(report)).toContain("consistent, 1 warning")
      }),
    { timeout: 60_000 }
  )

  it.scopedLive("the command prints the differences as JSON and exits 1", () =>
    Effect.gen(function*() {
      const { stack } = yield* consistentStack(3)
      yield* stack.sql`DELETE FROM orders WHERE id = 'o-1'`
      const { code, stderr, stdout } = yield* runCommand(
        ["--json", "--settle", "100ms"],
        {
          MONGODB_URI: stack.mongo.uri,
          DATABASE_URL: schemaUrl(stack.schema),
          KAFKA_BROKERS: kafkaBrokers.join(","),
          KAFKA_TOPIC: stack.topic,
          PROJECTOR_GROUP: GROUP,
          PROCESSOR_GROUP: `${GROUP}.processor`
        }
      )
      expect({ code, stderr }).toMatchObject({ code: 1 })
      const report: ConsistencyCheck.Report = JSON.parse(stdout)
      expect(report.orders).toEqual([expect.objectContaining({ orderId: "o-1", kind: "missing" })])
      expect(report.problems).toBe(1)
    }), { timeout: 90_000 })
})

const root = fileURLToPath(new URL("../../../", import.meta.url))

/** `pnpm check:consistency` as an operator runs it: its own process, configured by the environment. */
const runCommand = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.async<{ code: number | null; stdout: string; stderr: string }>((resume) => {
    const child = execFile(
      process.execPath,
      ["--import", "tsx", "packages/server/src/bin/check-consistency.ts", ...args],
      { cwd: root, env: { ...process.env, DATABASE_URL: databaseUrl, ...env }, timeout: 80_000 },
      (error, stdout, stderr) => resume(Effect.succeed({ code: error === null ? 0 : child.exitCode, stdout, stderr }))
    )
  })
