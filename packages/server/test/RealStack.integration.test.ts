/**
 * The original's two programs as separate OS processes against MongoDB,
 * PostgreSQL and Kafka: the five calls, a processor killed with SIGKILL, and a
 * clean exit on SIGTERM.
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
import { eventually, originalFiveCalls, startProgram } from "./support/programs.js"

/** A program for the scope: SIGTERM at the end, unless the test stopped it. */
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

const orderOf = async (baseUrl: string, id: string) => {
  const response = await fetch(`${baseUrl}/${id}`)
  return response.status === 200 ? (await response.json()) as { status: string; version: number } : undefined
}

describe("pnpm start:server and pnpm start:processor on the real stack", () => {
  it.scopedLive("serve the five calls, survive a killed processor, and stop cleanly", () =>
    Effect.gen(function*() {
      const database = yield* freshMongoDatabase
      const schema = yield* freshPgSchema()
      const topic = yield* freshKafkaTopic
      const env = {
        MONGODB_URI: mongoUriFor(database),
        DATABASE_URL: schemaUrl(schema),
        KAFKA_TOPIC: topic,
        PROCESSING_DELAY: "100 millis"
      }
      const port = yield* Effect.promise(freePort)
      const baseUrl = `http://127.0.0.1:${port}`
      const server = yield* program("server/src/bin/server.ts", { ...env, PORT: String(port) })
      const processor = yield* program("processor/src/bin/processor.ts", env)
      yield* waitForLine(server, "Listening on")
      yield* waitForLine(server, "projector consuming")
      yield* waitForLine(processor, "processor consuming")

      const { create, list, process, processed } = yield* Effect.promise(() => originalFiveCalls(baseUrl, "someid"))
      expect(create.status).toBe(201)
      expect(yield* Effect.promise(() => create.json())).toEqual({
        id: "someid",
        name: "somename",
        status: "new",
        version: 1
      })
      expect(process.status).toBe(202)
      expect(list.status).toBe(200)
      expect(processed).toEqual({ id: "someid", name: "somename", status: "processed", version: 3 })

      // The event store and the read model agree: three events, one row at version 3.
      const stored = yield* withMongo((client) =>
        client.db(database).collection("commits").find({ streamId: "someid" }).toArray()
      )
      expect(stored.flatMap((commit) => commit.events as Array<{ version: number }>).map((e) => e.version)).toEqual([
        1,
        2,
        3
      ])
      const rows = yield* withPostgres((client) => client.query(`SELECT status, version FROM ${schema}.orders`))
      expect(rows.rows).toEqual([{ status: "processed", version: 3 }])

      // A processor killed outright: what is requested while none runs is processed once one is back.
      processor.process.kill("SIGKILL")
      yield* Effect.promise(processor.stop)
      yield* Effect.promise(() =>
        fetch(`${baseUrl}/`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ id: "after-kill", name: "survivor" })
        })
      )
      yield* Effect.promise(() => fetch(`${baseUrl}/after-kill`, { method: "POST" }))
      const restarted = yield* program("processor/src/bin/processor.ts", env)
      const survivor = yield* Effect.promise(() =>
        eventually(
          () => orderOf(baseUrl, "after-kill").then((o) => o?.status === "processed" ? o : undefined),
          60_000,
          "the order requested while no processor ran to be processed"
        )
      )
      expect(survivor).toMatchObject({ status: "processed", version: 3 })

      expect(yield* Effect.promise(restarted.stop)).toBe(0)
      expect(yield* Effect.promise(server.stop)).toBe(0)
      expect(server.output()).not.toContain("level=ERROR")
    }), 180_000)
})
