/**
 * Three servers and two processors against the same stores, as OS processes:
 * concurrent commands spread over the servers, one server killed with SIGKILL
 * and one processor killed during its mock work (a rebalance), and at the end
 * the event store and the read model agree, every accepted command counted
 * exactly once and every processing request with exactly one outcome.
 */
import { describe, expect, it } from "@effect/vitest"
import { waitFor } from "@orders/domain/testing/fixtures"
import { freePort } from "@orders/infra/testing/network"
import { freshStack, withMongo, withPostgres } from "@orders/infra/testing/stack"
import { Duration, Effect } from "effect"
import { orderOf, startProgram, waitForOutput } from "./support/programs.js"

const ORDERS = 40
/** Long enough that a processor is killed while it holds requests in hand. */
const PROCESSING_DELAY = "1500 millis"

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
  it.scopedLive(
    "count every accepted command once, and give every processing request one outcome",
    () =>
      Effect.gen(function*() {
        const stack = yield* freshStack
        const { database, schema } = stack
        const env = { ...stack.env, PROCESSING_DELAY, OUTBOX_RELAY_GRACE: "2 seconds" }
        const ports = yield* Effect.promise(() => Promise.all([freePort(), freePort(), freePort()]))
        const servers = yield* Effect.forEach(
          ports,
          (port) => startProgram("server/src/bin/server.ts", { ...env, PORT: String(port) })
        )
        const processors = yield* Effect.forEach([1, 2], () => startProgram("processor/src/bin/processor.ts", env))
        yield* Effect.forEach(servers, (server) => waitForOutput(server, "projector consuming"), { discard: true })
        yield* Effect.forEach(processors, (processor) => waitForOutput(processor, "processor consuming"), {
          discard: true
        })
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
        yield* servers[0]!.kill
        yield* Effect.sleep("700 millis")
        yield* processors[0]!.kill
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
        const readStreams = withMongo(async (client) => {
          const commits = await client.db(database).collection("commits").find().toArray()
          const byStream = new Map<string, Array<StoredEvent>>()
          for (const commit of commits) {
            const events = byStream.get(commit.streamId as string) ?? []
            events.push(...(commit.events as Array<StoredEvent>))
            byStream.set(commit.streamId as string, events)
          }
          return new Map([...byStream].map(([id, events]) => [id, events.sort((a, b) => a.version - b.version)]))
        })
        // The killed processor's requests in hand are redelivered once the group notices it is gone (its session timeout).
        const streams = yield* waitFor(
          readStreams,
          (found) => requested.every((id) => found.get(id)?.length === 3),
          Duration.minutes(1)
        )
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

        // The read model catches up with the store exactly.
        const rowsAgree = (rows: ReadonlyArray<{ id: string; status: string; version: number }>) =>
          rows.length === streams.size &&
          rows.every((row) =>
            row.version === streams.get(row.id)?.length && row.status === finalStatus(streams.get(row.id)!)
          )
        const rows = yield* waitFor(
          withPostgres((client) =>
            client.query<{ id: string; status: string; version: number }>(
              `SELECT id, status, version FROM ${schema}.orders`
            )
          ).pipe(Effect.map((result) => result.rows)),
          rowsAgree,
          Duration.minutes(1)
        )
        expect(rowsAgree(rows)).toBe(true)
        for (const url of survivors) {
          expect(yield* orderOf(url, requested[0]!)).toMatchObject({ status: "processed", version: 3 })
        }

        // The outbox drained: every commit was published and its marker removed. What may stay is a marker
        // whose commit never came (the killed server died between the two inserts): it covers nothing.
        const unpublishedCommits = withMongo(async (client) => {
          const db = client.db(database)
          const markers = await db.collection<{ _id: string }>("outbox").find().toArray()
          return db.collection<{ _id: string }>("commits").countDocuments({
            _id: { $in: markers.map((marker) => marker._id) }
          })
        })
        expect(yield* waitFor(unpublishedCommits, (left) => left === 0, Duration.minutes(1))).toBe(0)
        for (const running of [...servers.slice(1), processors[1]!]) {
          expect(running.process.exitCode, running.output()).toBeNull()
        }
      }),
    300_000
  )
})
