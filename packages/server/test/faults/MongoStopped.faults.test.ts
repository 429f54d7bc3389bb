/**
 * Scenario 6: the event store's server (FerretDB, MongoDB protocol) stopped
 * for 10 s under load: commands answer 503 and change nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { eventsByCorrelation, landed } from "./Accounting.js"
import * as PrivateStack from "./PrivateStack.js"
import { expectRecovered, instances, runScenario } from "./Scenario.js"

describe("fault 6: MongoDB stopped", () => {
  it.scopedLive("commands answer 503 while the event store is down, and those change nothing", () =>
    Effect.gen(function*() {
      const outage = { from: 0, to: 0 }
      const outcome = yield* runScenario({
        number: 6,
        scenario: "FerretDB stopped 10 s",
        servers: instances(2),
        processors: instances(1),
        load: { orders: 50, spreadOver: "20 seconds", creators: 2, requesters: 2 },
        fault: ({ faultEnded, note }) =>
          Effect.gen(function*() {
            yield* Effect.sleep("5 seconds")
            yield* PrivateStack.stop("ferretdb", "SIGTERM")
            outage.from = yield* Clock.currentTimeMillis
            yield* note("FerretDB stopped")
            yield* Effect.sleep("10 seconds")
            outage.to = yield* Clock.currentTimeMillis
            yield* PrivateStack.up
            yield* faultEnded
            yield* note("FerretDB back after 10 s")
          })
      })
      expectRecovered(outcome)
      const duringOutage = outcome.sent.filter((command) =>
        command.sentAt >= outage.from && command.answeredAt <= outage.to
      )
      expect(duringOutage.filter((command) => command.status === 503).length).toBeGreaterThan(0)
      // A 503 ServiceUnavailable changed nothing (AppendOutcomeUnknown may have landed: the table counts those apart).
      const byCorrelation = eventsByCorrelation(outcome.stores)
      const unavailable = outcome.sent.filter((command) => command.tag === "ServiceUnavailable")
      expect(unavailable.filter((command) => landed(byCorrelation, command) !== undefined)).toEqual([])
      // Nothing is accepted without the event store (a refusal may come from what a server already knows).
      expect(duringOutage.filter((command) => command.status === 201 || command.status === 202)).toEqual([])
    }))
})
