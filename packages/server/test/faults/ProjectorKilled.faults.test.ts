/**
 * Scenario 3: the projector (it runs inside the server) killed with SIGKILL
 * in the middle of a backlog: the server goes down while the processor holds
 * the last requests (its mock work is long), stays down while the processor
 * records their outcomes, comes back, and is killed again as soon as the read
 * model has taken part of the backlog.
 */
import { describe, expect, it } from "@effect/vitest"
import { waitFor } from "@orders/domain/testing/fixtures"
import { withPostgres } from "@orders/infra/testing/stack"
import { Duration, Effect } from "effect"
import { inProcessing } from "./Faults.js"
import { expectRecovered, instances, runScenario } from "./Scenario.js"

/** Polls the events the read model holds (the sum of its rows' versions) until it moves past `from`. */
const firstProgressBeyond = (schema: string, from: number) =>
  withPostgres(async (client) => {
    const deadline = performance.now() + 120_000
    while (performance.now() < deadline) {
      const { rows } = await client.query<{ applied: string }>(
        `SELECT coalesce(sum(version), 0) AS applied FROM ${schema}.orders`
      )
      if (Number(rows[0]!.applied) > from) return Number(rows[0]!.applied)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    return from
  })

describe("fault 3: projector killed mid-batch", () => {
  it.scopedLive("a projector killed while it works through a backlog leaves the read model exact", () =>
    Effect.gen(function*() {
      const atKill = { backlog: 0, applied: 0 }
      const outcome = yield* runScenario({
        number: 3,
        scenario: "projector kill -9 mid-backlog",
        servers: instances(1),
        processors: instances(1),
        env: { PROCESSING_DELAY: "6 seconds" },
        // More events than one batch of the projector's upserts (128), so that a kill at its first progress is mid-backlog.
        load: { orders: 200, spreadOver: "5 seconds", creators: 2, requesters: 2 },
        fault: ({ faultEnded, loadDone, note, schema, servers, stores }) =>
          Effect.gen(function*() {
            const server = servers[0]!
            yield* loadDone
            yield* server.killAndHold
            // While the server is down the processor goes on recording outcomes: the projector's backlog grows.
            const settled = yield* waitFor(stores, (found) => inProcessing(found) === 0, Duration.minutes(1))
            const stored = [...settled.streams.values()].reduce((sum, events) => sum + events.length, 0)
            const projected = [...settled.rows.values()].reduce((sum, row) => sum + row.version, 0)
            yield* server.resume
            const applied = yield* firstProgressBeyond(schema, projected)
            yield* server.kill
            yield* faultEnded
            atKill.backlog = stored - projected
            atKill.applied = applied - projected
            yield* note(`killed after ${atKill.applied} of a backlog of ${atKill.backlog} events`)
          })
      })
      expectRecovered(outcome)
      // Killed in the middle of the backlog: it had begun and not finished.
      expect(atKill.applied).toBeGreaterThan(0)
      expect(atKill.applied).toBeLessThan(atKill.backlog)
    }))
})
