/** Scenario 5: PostgreSQL (the read model) stopped for 20 s under load: queries answer 503, commands go on. */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import type { QueryAnswer } from "./Faults.js"
import { probeQueries } from "./Faults.js"
import * as PrivateStack from "./PrivateStack.js"
import { expectRecovered, instances, runScenario } from "./Scenario.js"

describe("fault 5: PostgreSQL stopped", () => {
  it.scopedLive("queries answer 503 while the read model is down, commands are accepted, nothing is lost", () =>
    Effect.gen(function*() {
      const outage = { from: 0, to: 0, queries: [] as ReadonlyArray<QueryAnswer> }
      const outcome = yield* runScenario({
        number: 5,
        scenario: "PostgreSQL stopped 20 s",
        servers: instances(2),
        processors: instances(1),
        load: { orders: 50, spreadOver: "30 seconds", creators: 2, requesters: 2 },
        fault: ({ faultEnded, note, urls }) =>
          Effect.gen(function*() {
            yield* Effect.sleep("5 seconds")
            // SIGINT: PostgreSQL's fast shutdown, as `pg_ctl stop` does.
            yield* PrivateStack.stop("postgres", "SIGINT")
            outage.from = yield* Clock.currentTimeMillis
            yield* note("PostgreSQL stopped")
            const { answers } = yield* probeQueries(urls, "f5-0", Effect.sleep("20 seconds"))
            outage.to = yield* Clock.currentTimeMillis
            yield* PrivateStack.up
            yield* faultEnded
            const during = answers.filter((query) => query.answeredAt <= outage.to)
            outage.queries = during
            yield* note(
              `PostgreSQL back after 20 s; queries meanwhile: ${during.length}, answered 503: ${
                during.filter((query) => query.status === 503).length
              }`
            )
          })
      })
      expectRecovered(outcome)
      // Every query answered during the outage was a 503.
      expect(outage.queries.length).toBeGreaterThan(0)
      expect(outage.queries.filter((query) => query.status !== 503)).toEqual([])
      // Commands sent during the outage were accepted: they need the event store, not the read model.
      const duringOutage = outcome.sent.filter((command) =>
        command.sentAt >= outage.from && command.answeredAt <= outage.to
      )
      expect(duringOutage.filter((command) => command.status === 201 || command.status === 202).length)
        .toBeGreaterThan(0)
      expect(duringOutage.filter((command) => command.status === 503)).toEqual([])
    }))
})
