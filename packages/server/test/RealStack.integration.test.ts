/**
 * The original's two programs as separate OS processes against MongoDB,
 * PostgreSQL and Kafka: the five calls, a processor killed with SIGKILL, and a
 * clean exit on SIGTERM.
 */
import { describe, expect, it } from "@effect/vitest"
import { waitFor } from "@orders/domain/testing/fixtures"
import { freePort } from "@orders/infra/testing/network"
import { freshStack, withMongo, withPostgres } from "@orders/infra/testing/stack"
import { Effect } from "effect"
import { Duration } from "effect"
import { expectOriginalFiveCalls, originalFiveCalls } from "./support/originalFiveCalls.js"
import { orderOf, startProgram, waitForOutput } from "./support/programs.js"

describe("pnpm start:server and pnpm start:processor on the real stack", () => {
  it.scopedLive("serve the five calls, survive a killed processor, and stop cleanly", () =>
    Effect.gen(function*() {
      const stack = yield* freshStack
      const { database, schema } = stack
      const env = { ...stack.env, PROCESSING_DELAY: "100 millis" }
      const port = yield* Effect.promise(freePort)
      const baseUrl = `http://127.0.0.1:${port}`
      const server = yield* startProgram("server/src/bin/server.ts", { ...env, PORT: String(port) })
      const processor = yield* startProgram("processor/src/bin/processor.ts", env)
      yield* waitForOutput(server, "Listening on")
      yield* waitForOutput(server, "projector consuming")
      yield* waitForOutput(processor, "processor consuming")

      expectOriginalFiveCalls("someid", yield* originalFiveCalls(baseUrl, "someid"))

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
      yield* processor.kill
      yield* Effect.promise(() =>
        fetch(`${baseUrl}/`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ id: "after-kill", name: "survivor" })
        })
      )
      yield* Effect.promise(() => fetch(`${baseUrl}/after-kill`, { method: "POST" }))
      const restarted = yield* startProgram("processor/src/bin/processor.ts", env)
      const survivor = yield* waitFor(
        orderOf(baseUrl, "after-kill"),
        (order) => order?.status === "processed",
        Duration.minutes(1)
      )
      expect(survivor).toMatchObject({ status: "processed", version: 3 })

      expect(yield* restarted.stop).toBe(0)
      expect(yield* server.stop).toBe(0)
      expect(server.output()).not.toContain("level=ERROR")
    }), 180_000)
})
