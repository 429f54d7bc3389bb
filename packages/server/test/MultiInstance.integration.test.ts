/**
 * Three servers and two processors against the same stores, as OS processes:
 * concurrent commands spread over the servers, one server killed with SIGKILL
 * and one processor killed during its mock work (a rebalance), and at the end
 * the event store and the read model agree, every accepted command counted
 * exactly once and every processing request with exactly one outcome.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { freePort } from "../../infra/test/support/network.js"
import {
  freshKafkaTopic,
  freshMongoDatabase,
  freshPgSchema,
  mongoUriFor,
  schemaUrl,
  withMongo,
  withPostgres
} from "../../infra/test/support/stack.js"
import type { RunningProgram } from "./support/programs.js"
import { eventually, startProgram } from "./support/programs.js"

const ORDERS = 40
/** Long enough that a processor is killed while it holds requests in hand. */
const PROCESSING_DELAY = "1500 millis"

const program = (entry: string, env: Record<string, string>) =>
  Effect.acquireRelease(Effect.sync(() => startProgram(entry, env)), (running) => Effect.promise(running.stop))

const waitForLine = (running: RunningProgram, line: string) =>
  Effect.promise(() =>
    eventually(
      async () => {
        if (running.process.exitCode !== null) throw new Error(`exited early:\n${running.output()}`)
        return running.output().includes(line) ? true : undefined
      },
      60_000,
      `"${line}" in the output of the program:\n${running.output()}`
    )
  )

/** The status of a request, or "lost" when the server went away before answering (the outcome is unknown). */
const post = (url: string, body?: unknown) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(20_000)
  }).then(async (response) => {
    await response.arrayBuffer()
    return response.status
  }, () => "lost" as const)

interface StoredEvent {
  readonly version: number
  readonly type: string
}

describe("several instances of each program on the real stack", () => {
  it.scopedLive("count every accepted command once, and give every processing request one outcome", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const schema = yield* freshPgSchema()
      const topic = yield* freshKafkaTopic
      const env = {
        MONGODB_URI: mongoUriFor(database),
        DATABASE_URL: schemaUrl(schema),
        KAFKA_TOPIC: topic,
        PROCESSING_DELAY,
        OUTBOX_RELAY_GRACE: "2 seconds"
      }
      const ports = yield* Effect.promise(() => Promise.all([freePort(), freePort(), freePort()]))
      const servers = yield* Effect.forEach(ports, (port) =>
        program("server/src/bin/server.ts", { ...env, PORT: String(port) }))
      const processors = yield* Effect.forEach([1, 2], () => program("processor/src/bin/processor.ts", env))
      yield* Effect.forEach(servers, (server) => waitForLine(server, "projector consuming"), { discard: true })
      yield* Effect.forEach(processors, (processor) => waitForLine(processor, "processor consuming"), { discard: true })
      const urls = ports.map((port) => `http://127.0.0.1:${port}`)
      const survivors = urls.slice(1)

      // Each order: created through one server, then processing requested through two others at once.
      const ids = Array.from({ length: ORDERS }, (_, i) => `multi-${i}`)
      const run = Promise.all(ids.map(async (id, i) => {
        await new Promise((resolve) => setTimeout(resolve, i * 40))
        const created = await post(`${urls[i % 3]}/`, { id, name: `order ${i}` })
        const processing = await Promise.all([post(`${urls[(i + 1) % 3]}/${id}`), post(`${urls[(i + 2) % 3]}/${id}`)])
        return { id, created, processing }
      }))
      // Mid-run: the first server dies outright, and so does a processor in the middle of its mock work.
      yield* Effect.sleep("800 millis")
      servers[0]!.process.kill("SIGKILL")
      yield* Effect.sleep("700 millis")
      processors[0]!.process.kill("SIGKILL")
      const results = yield* Effect.promise(() => run)

      const accepted = results.filter((result) => result.created === 201)
      expect(accepted.length).toBeGreaterThan(ORDERS / 2)
      for (const result of results) {
        // Of two concurrent processing requests, at most one is accepted; the other is refused with 409.
        expect(result.processing.filter((status) => status === 202).length).toBeLessThanOrEqual(1)
        expect(result.processing.every((status) => [202, 404, 409, "lost"].includes(status))).toBe(true)
      }
      const requested = results.filter((result) => result.processing.includes(202)).map((result) => result.id)
      expect(requested.length).toBeGreaterThan(ORDERS / 2)

      // Every stream in the store: versions 1..n, created once, and each processing request followed by exactly one outcome.
      const streams = yield* withMongo(async (client) => {
        const commits = await client.db(database).collection("commits").find().toArray()
        const byStream = new Map<string, Array<StoredEvent>>()
        for (const commit of commits) {
          const events = byStream.get(commit.streamId as string) ?? []
          events.push(...(commit.events as Array<StoredEvent>))
          byStream.set(commit.streamId as string, events)
        }
        return new Map([...byStream].map(([id, events]) => [id, events.sort((a, b) => a.version - b.version)]))
      })
      for (const result of accepted) expect(streams.has(result.id)).toBe(true)
      const finalStatus = (events: ReadonlyArray<StoredEvent>) =>
        events.at(-1)?.type === "OrderProcessed" ? "processed" : events.length === 2 ? "processing" : "new"
      for (const [id, events] of streams) {
        expect(events.map((event) => event.version), id).toEqual(events.map((_, i) => i + 1))
        expect(events.map((event) => event.type), id).toEqual(
          ["OrderCreated", "OrderProcessingRequested", "OrderProcessed"].slice(0, events.length)
        )
      }
      for (const id of requested) expect(streams.get(id)?.length, id).toBe(3)

      // The read model, served by the surviving servers, catches up with the store exactly.
      const rows = yield* Effect.promise(() =>
        eventually(
          async () => {
            const found = await withPostgresRows(schema)
            const agrees = found.length === streams.size &&
              found.every((row) =>
                row.version === streams.get(row.id)?.length && row.status === finalStatus(streams.get(row.id)!)
              )
            return agrees ? found : undefined
          },
          90_000,
          "the read model to agree with the event store"
        )
      )
      expect(rows).toHaveLength(streams.size)
      for (const url of survivors) {
        const response = yield* Effect.promise(() => fetch(`${url}/${requested[0]}`).then((r) => r.json()))
        expect(response).toMatchObject({ id: requested[0], status: "processed", version: 3 })
      }

      // The outbox drained: every commit was published and its marker removed. What may stay is a marker
      // whose commit never came (the killed server died between the two inserts): it covers nothing.
      const unpublishedCommits = yield* Effect.promise(() =>
        eventually(
          async () => {
            const left = await Effect.runPromise(withMongo(async (client) => {
              const db = client.db(database)
              const markers = await db.collection<{ _id: string }>("outbox").find().toArray()
              return db.collection<{ _id: string }>("commits").countDocuments({
                _id: { $in: markers.map((marker) => marker._id) }
              })
            }))
            return left === 0 ? left : undefined
          },
          60_000,
          "the outbox to drain"
        )
      )
      expect(unpublishedCommits).toBe(0)
      for (const running of [...servers.slice(1), processors[1]!]) {
        expect(running.process.exitCode, running.output()).toBeNull()
      }
    }), 300_000)
})

const withPostgresRows = (schema: string) =>
  Effect.runPromise(
    withPostgres((client) =>
      client.query<{ id: string; status: string; version: number }>(`SELECT id, status, version FROM ${schema}.orders`)
    )
  ).then((result) => result.rows)
